// weft::training::TrainState: apply_gradients is exactly one step of the optimizer by hand, the
// state is a value (the old one is unchanged), and bad trees are named.
#include <string>
#include <utility>

#include "checkpoint_testing.hpp"
#include "testing.hpp"
#include "weft/jit.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/module.hpp"
#include "weft/ops.hpp"
#include "weft/optim.hpp"
#include "weft/training/train_state.hpp"

using namespace weft;
using weft::testing::check_identical;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

const nn::Dense kModel{.features = 3};
const auto kApply = [](const Variables& variables, const Tensor& x) { return nn::apply(kModel, variables, x); };
using State = training::TrainState<std::remove_const_t<decltype(kApply)>>;

Variables initial_params() { return nn::init(kModel, Key(0), pattern(Shape{4, 2})).collection("params"); }

/// The mean square of the model's output against a fixed target: its gradient changes with the params.
template <class Apply>
Variables gradients(const Apply& apply, const Variables& params) {
  const Tensor x = pattern(Shape{4, 2}, -1.0f, 1.0f, 1), target = pattern(Shape{4, 3}, -1.0f, 1.0f, 2);
  return value_and_grad([&](const Variables& p) { return mean(square(apply(p, x) - target)); })(params).grad;
}

}  // namespace

TEST_CASE("TrainState::apply_gradients: the params and opt_state of the optimizer run by hand, step + 1") {
  const optim::GradientTransformation tx = optim::chain(optim::clip_by_global_norm(0.5f), optim::adam(0.1f));
  State state = State::create(kApply, initial_params(), tx);
  CHECK(state.step() == 0);
  check_identical(state.opt_state(), tx.init(initial_params()));

  Variables params = initial_params(), opt_state = tx.init(params);
  for (int i = 1; i <= 3; ++i) {
    const Variables grads = gradients(kApply, params);
    auto [updates, next] = tx.update(grads, opt_state, params);
    params = optim::apply_updates(params, updates);
    opt_state = std::move(next);

    const State before = state;
    state = state.apply_gradients(gradients(state.apply_fn(), state.params()));
    CHECK(state.step() == i);
    check_identical(state.params(), params);
    check_identical(state.opt_state(), opt_state);
    // A value: the state the step started from is as it was.
    CHECK(before.step() == i - 1);
    CHECK(before.params().at("params/kernel").to_vector() != params.at("params/kernel").to_vector());
  }
  // Adam's count went up once per step.
  CHECK(state.opt_state().at("1/count/count").to_int_vector() == std::vector<std::int32_t>{3});
}

TEST_CASE("TrainState: the model state stays, or is replaced with apply_gradients(grads, model_state)") {
  const Variables stats = Variables::from_leaves({{"batch_stats/BatchNorm_0/mean", Tensor({0.5f, -0.5f}, Shape{2})}});
  const State state(kApply, initial_params(), optim::sgd(0.5f), stats);
  check_identical(state.variables(), initial_params().merge(stats));

  const Variables grads = gradients(kApply, state.params());
  const State kept = state.apply_gradients(grads);
  check_identical(kept.model_state(), stats);
  const Variables new_stats = stats.set("batch_stats/BatchNorm_0/mean", Tensor({1.0f, 2.0f}, Shape{2}));
  const State replaced = state.apply_gradients(grads, new_stats);
  check_identical(replaced.model_state(), new_stats);
  check_identical(replaced.params(), kept.params());
  // sgd: params - 0.5 * grads, leaf by leaf.
  for (const auto& [path, p] : state.params().leaves()) {
    INFO(path);
    const std::vector<float> got = kept.params().at(path).to_vector(), p0 = p.to_vector(), g = grads.at(path).to_vector();
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == p0[i] - 0.5f * g[i]);
  }
}

TEST_CASE("TrainState::apply_gradients: gradients of another tree are named") {
  const State state = State::create(kApply, initial_params(), optim::adam(0.1f));
  const Variables grads = gradients(kApply, state.params());
  check_throws_with<KeyError>([&] { (void)state.apply_gradients(grads.subtree("params/kernel")); },
                              {"weft::training::TrainState::apply_gradients", "\"params/bias\"",
                               "is in the params but not in the gradients", "1 vs 2 leaves", "state.params()"});
  check_throws_with<KeyError>(
      [&] { (void)state.apply_gradients(grads.set("params/extra", Tensor({1.0f}, Shape{1}))); },
      {"\"params/extra\" is in the gradients but not in the params"});
  check_throws_with<ShapeError>(
      [&] { (void)state.apply_gradients(grads.set("params/bias", Tensor({1.0f, 2.0f}, Shape{2}))); },
      {"weft::training::TrainState::apply_gradients", "at \"params/bias\"", "the gradient is (2,)",
       "the param is (3,)"});
  // A failed step leaves nothing half done: the state is the one it was.
  CHECK(state.step() == 0);
}

TEST_CASE("TrainState::create: empty params, a collection twice, or an empty optimizer are refused") {
  check_throws_with<ValueError>([] { (void)State::create(kApply, Variables{}, optim::sgd(0.1f)); },
                                {"TrainState::create", "the params are empty", "variables.collection(\"params\")"});
  const Variables variables = initial_params().merge(
      Variables::from_leaves({{"batch_stats/mean", Tensor({0.0f}, Shape{1})}}));
  check_throws_with<ValueError>([&] { (void)State::create(kApply, variables, optim::sgd(0.1f), variables); },
                                {"\"batch_stats\" is both in the params and in the model state", "variables.without(\"params\")"});
  check_throws_with<ValueError>([] { (void)State::create(kApply, initial_params(), optim::GradientTransformation{}); },
                                {"the optimizer has no init function"});
}

TEST_CASE("TrainState::restored: a checkpoint's step and trees, checked against the state's") {
  const State state = State::create(kApply, initial_params(), optim::adam(0.1f));
  const State trained = state.apply_gradients(gradients(kApply, state.params())).apply_gradients(
      gradients(kApply, state.params()));
  const State restored = state.restored(trained.step(), trained.params(), trained.opt_state(), trained.model_state());
  CHECK(restored.step() == 2);
  check_identical(restored.params(), trained.params());
  check_identical(restored.opt_state(), trained.opt_state());
  // It continues as the trained state does.
  const Variables grads = gradients(kApply, trained.params());
  check_identical(restored.apply_gradients(grads).params(), trained.apply_gradients(grads).params());

  check_throws_with<ValueError>(
      [&] { (void)state.restored(-1, trained.params(), trained.opt_state(), {}); }, {"the step is -1"});
  check_throws_with<ValueError>(
      [&] { (void)state.restored(std::int64_t{1} << 31, trained.params(), trained.opt_state(), {}); },
      {"the step is 2147483648", "from 0 to 2147483647"});
  check_throws_with<KeyError>(
      [&] { (void)state.restored(2, trained.params(), trained.opt_state().without("mu"), {}); },
      {"TrainState::restored", "the restored opt_state and the state's opt_state differ", "\"mu/params/bias\""});
}

TEST_CASE("TrainState under weft::jit: each step equals eager mode's bit for bit; another optimizer traces again") {
  const Tensor x = pattern(Shape{4, 2}, -1.0f, 1.0f, 1), target = pattern(Shape{4, 3}, -1.0f, 1.0f, 2);
  const auto loss_fn = [](const Variables& p, const Tensor& in, const Tensor& t) {
    return mean(square(kApply(p, in) - t));
  };
  const auto train_step = jit([&](const State& s, const Tensor& in, const Tensor& t) {
    const auto [loss, grads] = value_and_grad(loss_fn)(s.params(), in, t);
    return std::pair{s.apply_gradients(grads), loss};
  });
  State eager = State::create(kApply, initial_params(), optim::adam(0.1f));
  State jitted = eager;
  for (int i = 1; i <= 3; ++i) {
    const auto [eager_loss, grads] = value_and_grad(loss_fn)(eager.params(), x, target);
    eager = eager.apply_gradients(grads);
    // The first call from a copy of the eager state (not written), later ones donated (in place).
    auto [next, loss] = i == 1 ? train_step(jitted, x, target) : train_step(std::move(jitted), x, target);
    jitted = std::move(next);
    INFO("step " << i);
    CHECK(jitted.step() == i);
    CHECK(loss.item() == eager_loss.item());
    check_identical(jitted.params(), eager.params());
    check_identical(jitted.opt_state(), eager.opt_state());
  }
  CHECK(train_step.trace_count() == 1);

  // A state with another optimizer is another plan (tx is static, as in Flax), so sgd's step runs.
  const State other = State::create(kApply, initial_params(), optim::sgd(0.5f));
  const auto [sgd_state, sgd_loss] = train_step(other, x, target);
  CHECK(train_step.trace_count() == 2);
  check_identical(sgd_state.params(), other.apply_gradients(gradients(kApply, other.params())).params());
  CHECK(sgd_state.step() == 1);
  // A restored state keeps the optimizer: the plan of the first state replays.
  (void)train_step(eager.restored(7, eager.params(), eager.opt_state(), {}), x, target);
  CHECK(train_step.trace_count() == 2);

  // The model state is an input and a result too: batch statistics computed in the step come out.
  const Variables stats = Variables::from_leaves({{"batch_stats/mean", Tensor({0.5f, -0.5f}, Shape{2})}});
  const auto with_stats = jit([&](const State& s, const Tensor& in, const Tensor& t) {
    const Tensor mean_now = mean(in, {0});
    const Variables next_stats = s.model_state().set(
        "batch_stats/mean", 0.9f * s.model_state().at("batch_stats/mean") + 0.1f * mean_now);
    return s.apply_gradients(value_and_grad(loss_fn)(s.params(), in, t).grad, next_stats);
  });
  const State stateful(kApply, initial_params(), optim::sgd(0.5f), stats);
  const State jitted_stats = with_stats(stateful, x, target);
  const State eager_stats = stateful.apply_gradients(
      value_and_grad(loss_fn)(stateful.params(), x, target).grad,
      stats.set("batch_stats/mean", 0.9f * stats.at("batch_stats/mean") + 0.1f * mean(x, {0})));
  check_identical(jitted_stats.model_state(), eager_stats.model_state());
  check_identical(jitted_stats.params(), eager_stats.params());
  CHECK(jitted_stats.step() == 1);

  // The step is computed by the plan: reading it while tracing is an error that says what to use.
  const auto reads_step = jit([](const State& s) { return s.step() > 0 ? s.params() : s.opt_state(); });
  check_throws_with<Error>([&] { (void)reads_step(eager); },
                           {"TrainState::step() (use step_tensor())", "read the value of a tensor",
                            "an input of the function"});
}
