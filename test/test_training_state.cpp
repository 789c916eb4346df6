// weft::io::TrainingState: variables, the optimizer state of every weft optimizer, step, key and
// metadata saved and restored as one unit; a run continued from a restored state takes the same
// steps, bit for bit, as the run that never stopped.
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint_testing.hpp"
#include "temp_dir.hpp"
#include "testing.hpp"
#include "weft/io/restore.hpp"
#include "weft/io/training_state.hpp"
#include "weft/optim.hpp"
#include "weft/random.hpp"

using namespace weft;
using namespace weft::testing;
namespace fs = std::filesystem;

namespace {

Variables model_params() {
  return Variables::from_leaves({
      {"params/Dense_0/kernel", Tensor(distinct_values(6, 1), Shape{2, 3})},
      {"params/Dense_0/bias", Tensor(distinct_values(3, 2), Shape{3})},
      {"params/Dense_1/kernel", Tensor(distinct_values(3, 3), Shape{3, 1})},
  });
}

/// Gradients that change with the params and the step (as a loss's would).
Variables gradients(const Variables& params, std::int64_t step) {
  return tree_map([step](const Tensor& p) { return p * 0.3f + full(p.shape(), 0.05f * static_cast<float>(step % 3) - 0.04f); },
                  params);
}

struct Run {
  Variables params, opt_state;
  std::int64_t step = 0;
};

Run steps(const optim::GradientTransformation& tx, Run run, int n) {
  for (int i = 0; i < n; ++i) {
    auto [updates, state] = tx.update(gradients(run.params, run.step), run.opt_state, run.params);
    run.params = optim::apply_updates(run.params, updates);
    run.opt_state = std::move(state);
    ++run.step;
  }
  return run;
}

}  // namespace

TEST_CASE("training state: every optimizer's state round-trips, and a restored run continues bit for bit") {
  TempDir dir;
  const std::vector<std::pair<std::string, optim::GradientTransformation>> optimizers{
      {"sgd", optim::sgd(0.1f)},
      {"sgd nesterov momentum", optim::sgd(0.1f, 0.9f, true)},
      {"adam with a cosine schedule", optim::adam(optim::cosine_decay_schedule(1e-2f, 10))},
      {"adamw", optim::adamw(1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f)},
      {"clip then adam", optim::chain(optim::clip_by_global_norm(0.5f), optim::adam(1e-2f))},
      {"rmsprop centred, nesterov", optim::rmsprop(1e-2f, 0.9f, 1e-8f, 0.1f, true, true, 0.9f, true)},
      {"adagrad", optim::adagrad(1e-2f)},
      {"lion masked", optim::lion(1e-3f, 0.9f, 0.99f, 1e-2f, [](std::string_view p) { return !p.ends_with("/bias"); })},
      {"lamb", optim::lamb(1e-2f, 0.9f, 0.999f, 1e-6f, 0.0f, 1e-2f)},
      {"adafactor factored, momentum", optim::adafactor({.learning_rate = 1e-2f, .min_dim_size_to_factor = 2,
                                                         .momentum = 0.9f})},
      {"masked adam", optim::masked(optim::adam(1e-2f), [](std::string_view p) { return p.ends_with("/kernel"); })},
      {"multi_transform", optim::multi_transform({{"a", optim::adam(1e-2f)}, {"s", optim::sgd(1e-2f, 0.9f)}},
                                                 [](std::string_view p) { return p.ends_with("/bias") ? "s" : "a"; })},
      {"MultiSteps", optim::MultiSteps(optim::adam(1e-2f), 2).gradient_transformation()},
      {"ema after sgd", optim::chain(optim::sgd(1e-2f), optim::ema(0.9f))},
      {"inject_hyperparams", optim::inject_hyperparams(
                                 [](const optim::Hyperparams& h) { return optim::adam(h.at("learning_rate")); },
                                 {{"learning_rate", optim::exponential_decay(1e-2f, 2, 0.5f)}})},
  };
  for (const auto& [name, tx] : optimizers) {
    INFO(name);
    const Run start{model_params(), tx.init(model_params()), 0};
    const Run before = steps(tx, start, 3);
    const Variables variables = before.params.merge(
        Variables::from_leaves({{"batch_stats/BatchNorm_0/mean", Tensor({0.5f, -0.5f}, Shape{2})}}));
    const Key key = fold_in(Key(42), 3);
    io::save_training_state(dir / "state.safetensors",
                            {variables, before.opt_state, before.step, key, {{"epoch", "1"}, {"note", name}}});
    const io::TrainingState loaded = io::load_training_state(dir / "state.safetensors");
    check_identical(loaded.variables, variables);
    check_identical(loaded.opt_state, before.opt_state);
    CHECK(loaded.step == 3);
    CHECK(loaded.rng == key);
    CHECK(loaded.metadata == io::SafetensorsMetadata{{"epoch", "1"}, {"note", name}});
    // The loaded state fits what the optimizer initialises, and the continued run is the same run.
    const Run resumed{io::restore(model_params(), loaded.variables.collection("params")),
                      io::restore(tx.init(model_params()), loaded.opt_state), loaded.step};
    const Run straight = steps(tx, before, 4), continued = steps(tx, resumed, 4);
    check_identical(continued.params, straight.params);
    check_identical(continued.opt_state, straight.opt_state);
  }
}

TEST_CASE("training state: through a CheckpointManager, and the errors of a state that is not one") {
  TempDir dir;
  const io::CheckpointManager manager(dir.path());
  const io::TrainingState state{model_params(), optim::adam(1e-3f).init(model_params()), 7,
                                Key::from_words({0xdeadbeefu, 12345u}), {}};
  manager.save(state.step, io::to_checkpoint(state));
  const io::TrainingState back = io::from_checkpoint(manager.restore(*manager.latest_step()));
  check_identical(back.variables, state.variables);
  check_identical(back.opt_state, state.opt_state);
  CHECK(back.step == 7);
  CHECK(back.rng.words() == std::array<std::uint32_t, 2>{0xdeadbeefu, 12345u});
  CHECK(back.rng.layout() == ThreefryLayout::partitionable);
  // The key's layout travels with it.
  io::TrainingState classic = state;
  classic.rng = Key::from_words({7u, 9u}, ThreefryLayout::classic);
  CHECK(io::from_checkpoint(io::to_checkpoint(classic)).rng == classic.rng);
  // An optimizer without state (clip alone) and an empty model are states too.
  const io::TrainingState empty{Variables(), optim::clip_by_global_norm(1.0f).init(model_params()), 0, Key(0), {}};
  const io::TrainingState empty_back = io::from_checkpoint(io::to_checkpoint(empty));
  CHECK(empty_back.variables.empty());
  CHECK(empty_back.opt_state.empty());

  check_throws_with<ValueError>([&] { (void)io::to_checkpoint({model_params(), {}, 0, Key(0), {{"weft.step", "9"}}}); },
                                {"\"weft.step\"", "weft keeps for its own fields"});
  io::save_safetensors(dir / "plain.safetensors", model_params());
  check_throws_with<io::DataError>([&] { (void)io::load_training_state(dir / "plain.safetensors"); },
                                   {"weft::io::load_training_state", "plain.safetensors", "\"params\""});
  io::save_safetensors(dir / "no_step.safetensors", model_params().prefixed("variables"));
  check_throws_with<io::DataError>([&] { (void)io::load_training_state(dir / "no_step.safetensors"); }, {"no weft.step"});
  io::Checkpoint bad = io::to_checkpoint(state);
  bad.metadata["weft.rng_key"] = "12";
  check_throws_with<io::DataError>([&] { (void)io::from_checkpoint(bad); }, {"weft.rng_key", "\"12\"", "not two words"});
  bad.metadata["weft.rng_key"] = "1,99999999999";
  check_throws_with<io::DataError>([&] { (void)io::from_checkpoint(bad); }, {"weft.rng_key", "not a number"});
  bad.metadata["weft.rng_key"] = "1,2";
  bad.metadata["weft.rng_key_layout"] = "rbg";
  check_throws_with<io::DataError>([&] { (void)io::from_checkpoint(bad); },
                                   {"weft.rng_key_layout", "\"rbg\"", "\"partitionable\" or \"classic\""});
  bad.metadata.erase("weft.rng_key_layout");
  check_throws_with<io::DataError>([&] { (void)io::from_checkpoint(bad); }, {"no weft.rng_key_layout"});
  bad.metadata["weft.rng_key_layout"] = "classic";
  bad.metadata["weft.step"] = "7x";
  check_throws_with<io::DataError>([&] { (void)io::from_checkpoint(bad); }, {"weft.step", "\"7x\""});
}
