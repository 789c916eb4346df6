// checkpoint-resume: trains a small MLP on Fashion-MNIST with periodic checkpoints, and continues
// from the latest one with --resume; a resumed run ends with the same parameters, bit for bit, as
// a run never interrupted.
//
//   checkpoint-resume --checkpoint-dir DIR [--steps N] [--save-every K] [--resume] [--data-dir DIR]
//                     [--train-examples N] [--threads N]
//
// The Flax and Orbax it mirrors:
//
//   manager = ocp.CheckpointManager(checkpoint_dir, options=ocp.CheckpointManagerOptions(max_to_keep=3))
//   state = {'variables': variables, 'opt_state': opt_state, 'step': 0, 'rng': jax.random.key(0)}
//   if resume and manager.latest_step() is not None:
//     state = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(state))
//   while state['step'] < steps:
//     rng, dropout_rng = jax.random.split(state['rng'])
//     ...one step on batch (step % steps_per_epoch) of epoch (step // steps_per_epoch)...
//     if step % save_every == 0 or step == steps:
//       manager.save(step, args=ocp.args.StandardSave(state))
//
// Everything a step depends on is in the checkpoint (variables, Adam's state, the step, the running
// key) or derived from the step (which batch of which epoch's shuffle), so resuming at any saved
// step repeats the uninterrupted run exactly. The last line reads
// `final step=N test_accuracy=X params_crc32=C`, C the CRC-32 of the parameters as weft-train
// computes it (each leaf's path and float32 bytes, in path order).
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "example_cli.hpp"
#include "params_crc32.hpp"
#include "weft/autodiff.hpp"
#include "weft/io/batches.hpp"
#include "weft/io/checkpoint_manager.hpp"
#include "weft/io/restore.hpp"
#include "weft/io/training_state.hpp"
#include "weft/losses.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/optim.hpp"
#include "weft/weft.hpp"

using namespace weft;

namespace {

/// Dense 128, ReLU, Dropout, dense 10: small, and with dropout, so that the saved key matters.
struct MLP {
  float dropout_rate = 0.1f;
  Tensor operator()(nn::Scope& s, const Tensor& images, bool train) const {
    Tensor x = reshape(images, {images.shape()[0], -1});
    x = relu(s(nn::Dense{.features = 128}, x));
    x = s(nn::Dropout{.rate = dropout_rate}, x, "deterministic"_kw = !train);
    return s(nn::Dense{.features = 10}, x);
  }
};

struct Options {
  std::string checkpoint_dir;
  std::int64_t steps = 200;
  std::int64_t save_every = 50;
  bool resume = false;
  std::int64_t batch_size = 128;
  std::string data_dir = std::string(io::kFashionMnistDir);
  std::int64_t train_examples = 0;  // 0: all
  int threads = 0;                  // 0: all cores
};

constexpr const char* kProgram = "checkpoint-resume";

constexpr const char* kUsage = R"(usage: checkpoint-resume --checkpoint-dir DIR [options]

Trains an MLP (dense 128, ReLU, dropout 0.1, dense 10) on Fashion-MNIST with Adam (learning rate
0.001, batch 128), saving the training state (parameters, Adam's state, step, random key) every
--save-every steps and after the last; --resume continues from the latest checkpoint.

  --checkpoint-dir DIR  where the checkpoints go: DIR/step_NNNNNN, the last three kept (required)
  --steps N             train until step N (default 200)
  --save-every K        save after every K-th step (default 50)
  --resume              continue from the latest checkpoint in DIR (from the start when there is
                        none); --data-dir and --train-examples must be those of the run that wrote it
  --data-dir DIR        the IDX files (default /usr/share/datasets/fashion-mnist, Debian's
                        dataset-fashion-mnist package)
  --train-examples N    train on the first N training images only (default: all 60000)
  --threads N           threads for weft's kernels (default: all cores); results do not depend on it
  --help                this text

The last line reads: final step=N test_accuracy=X params_crc32=C, where C is the CRC-32 of the
parameters (paths and float32 bytes in path order): a resumed run prints the line of a run never
interrupted.
)";

Options parse(int argc, char** argv) {
  Options o;
  examples::Arguments args(kProgram, kUsage, argc, argv);
  while (const auto option = args.next()) {
    if (*option == "--resume") {
      o.resume = true;
    } else if (*option == "--checkpoint-dir") {
      o.checkpoint_dir = args.value();
    } else if (*option == "--steps") {
      o.steps = args.integer<std::int64_t>(1);
    } else if (*option == "--save-every") {
      o.save_every = args.integer<std::int64_t>(1);
    } else if (*option == "--data-dir") {
      o.data_dir = args.value();
    } else if (*option == "--train-examples") {
      o.train_examples = args.integer<std::int64_t>(1);
    } else if (*option == "--threads") {
      o.threads = args.integer(1);
    } else {
      args.unknown();
    }
  }
  if (o.checkpoint_dir.empty())
    args.error("--checkpoint-dir is required: the directory that holds (or will hold) the checkpoints");
  return o;
}

double test_accuracy(const MLP& model, const Variables& variables, const io::FashionMnist& ds) {
  double correct = 0;
  for (const io::Batch& b : io::batches(ds.test_images, ds.test_labels, 1000, std::nullopt, /*drop_last=*/false))
    correct += sum(astype(argmax(nn::apply(model, variables, b.images, false), -1) == b.labels, DType::float32)).item();
  return correct / static_cast<double>(ds.test_images.shape()[0]);
}

/// What fixes the data a step sees: a resumed run must have the same.
io::SafetensorsMetadata run_options(const io::FashionMnist& ds) {
  return {{"train_examples", std::to_string(ds.train_images.shape()[0])}};
}

/// The latest checkpoint's state, checked against this run's data, or nullopt when there is none.
std::optional<io::TrainingState> latest(const io::CheckpointManager& manager, const io::FashionMnist& ds) {
  const auto step = manager.latest_step();
  if (!step) return std::nullopt;
  io::TrainingState state = io::from_checkpoint(manager.restore(*step));
  for (const auto& [key, value] : run_options(ds)) {
    const auto it = state.metadata.find(key);
    if (it == state.metadata.end() || it->second != value)
      throw Error("the checkpoint " + manager.step_directory(*step).string() + " was written with " + key + " " +
                  (it == state.metadata.end() ? std::string("unknown") : it->second) + " but this run has " + value +
                  "; give the --data-dir and --train-examples of the run that wrote it");
  }
  return state;
}

int train(const Options& o, const io::FashionMnist& ds) {
  const MLP model;
  const Key root(0);
  const Key init_key = fold_in(root, 0), shuffle_key = fold_in(root, 1);
  const auto tx = optim::adam(1e-3f);
  io::TrainingState state;
  state.variables = nn::init(model, init_key, slice_axis(ds.train_images, 0, 0, 1), false);
  state.opt_state = tx.init(state.variables.collection("params"));
  state.rng = fold_in(root, 2);
  state.metadata = run_options(ds);

  const io::CheckpointManager manager(o.checkpoint_dir);
  if (const auto saved = latest(manager, ds)) {
    if (!o.resume)
      throw Error("--checkpoint-dir " + o.checkpoint_dir + " already holds checkpoints up to step " +
                  std::to_string(saved->step) + "; pass --resume to continue from there, or give another directory");
    // io::restore checks the loaded trees against the model's and the optimizer's.
    state = {io::restore(state.variables, saved->variables), io::restore(state.opt_state, saved->opt_state),
             saved->step, saved->rng, saved->metadata};
    std::printf("resuming from step %lld in %s\n", static_cast<long long>(state.step), o.checkpoint_dir.c_str());
  } else if (o.resume) {
    std::printf("no checkpoint in %s yet: training from the start\n", o.checkpoint_dir.c_str());
  }

  const auto loss_fn = [&model](const Variables& params, const Tensor& x, const Tensor& y, Key key) {
    const Tensor logits = nn::apply(model, params, Rngs{{"dropout", key}}, x, true);
    return mean(losses::softmax_cross_entropy_with_integer_labels(logits, y));
  };
  // The batch is a function of the step alone: batch (step % steps_per_epoch) of its epoch's shuffle.
  const std::int64_t steps_per_epoch = io::num_batches(ds.train_images.shape()[0], o.batch_size, true);
  const auto epoch_batches = [&](std::int64_t epoch) {
    return io::batches(ds.train_images, ds.train_labels, o.batch_size, fold_in(shuffle_key, epoch), true);
  };
  std::int64_t epoch = state.step / steps_per_epoch;
  io::Batches batches = epoch_batches(epoch);
  while (state.step < o.steps) {
    if (state.step / steps_per_epoch != epoch) batches = epoch_batches(++epoch);
    const io::Batch b = batches[state.step % steps_per_epoch];
    const auto keys = split(state.rng);
    const Variables params = state.variables.collection("params");
    auto [loss, grads] = value_and_grad(loss_fn)(params, b.images, b.labels, keys[1]);
    auto [updates, opt_state] = tx.update(grads, state.opt_state, params);
    state.variables = optim::apply_updates(params, updates);
    state.opt_state = std::move(opt_state);
    state.rng = keys[0];
    ++state.step;
    if (state.step % o.save_every == 0 || state.step == o.steps) {
      manager.save(state.step, io::to_checkpoint(state));
      std::printf("step %lld: loss %.4f, saved %s\n", static_cast<long long>(state.step), loss.item(),
                  manager.step_directory(state.step).string().c_str());
      std::fflush(stdout);
    }
  }
  std::printf("final step=%lld test_accuracy=%.4f params_crc32=%08x\n", static_cast<long long>(state.step),
              test_accuracy(model, state.variables, ds), examples::params_crc32(state.variables));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  examples::set_threads(o.threads);
  const io::FashionMnist ds = examples::load_data(kProgram, o.data_dir, o.train_examples, o.batch_size);
  try {
    return train(o, ds);
  } catch (const io::DataError& e) {
    std::cerr << kProgram << ": " << e.what() << " (in --checkpoint-dir " << o.checkpoint_dir << ")\n";
    return 1;
  } catch (const Error& e) {
    std::cerr << kProgram << ": " << e.what() << "\n";
    return 1;
  }
}
