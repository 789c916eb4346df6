// weft-train: trains a model on Fashion-MNIST and reports its test accuracy.
//
//   weft-train [--model residual|cnn] [--epochs N] [--batch-size N] [--lr X] [--seed N] [--dropout X]
//              [--threads N] [--data-dir DIR] [--checkpoint-dir DIR [--resume | --eval-only]]
//              [--log-dir DIR [--log-every N]]
//   mpirun -np N weft-train --data-parallel [options]
//
// The last line of output has the form
// `final model=residual test_accuracy=0.8931 wall_s=123.4 examples_per_s=5012 params_crc32=1a2b3c4d`.
#include <omp.h>

#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "params_crc32.hpp"
#include "weft/autodiff.hpp"
#include "weft/io/batches.hpp"
#include "weft/io/fashion_mnist.hpp"
#include "weft/io/restore.hpp"
#include "weft/io/training_state.hpp"
#include "weft/jit.hpp"
#include "weft/losses.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/optim.hpp"
#include "weft/training.hpp"
#include "weft/weft.hpp"
#ifdef WEFT_TRAIN_DATA_PARALLEL
#include "weft/dist.hpp"
#endif

using namespace weft;

namespace models {

/// The seed's block: x + Dropout(Dense(relu(Dense(x)))). The Dropout template arrives with
/// `deterministic` already fixed by the top module, so the block never sees `train`.
struct ResidualBlock {
  nn::Dropout dropout;
  std::int64_t features = 256;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const Tensor h = relu(s(nn::Dense{.features = features}, x));
    return x + s(dropout, s(nn::Dense{.features = features}, h));
  }
};

/// Dense 784 -> 256, ten residual blocks, dense 256 -> 10.
struct ResidualModel {
  float drop_rate = kDefaultDropRate;
  static constexpr float kDefaultDropRate = 0.1f;
  std::int64_t width = 256;
  int blocks = 10;
  Tensor operator()(nn::Scope& s, const Tensor& images, bool train) const {
    const auto dropout = nn::Dropout{.rate = drop_rate, .deterministic = !train};
    Tensor x = s(nn::Dense{.features = width}, reshape(images, {images.shape()[0], -1}));
    for (int i = 0; i < blocks; ++i) x = s(ResidualBlock{.dropout = dropout, .features = width}, x);
    return s(nn::Dense{.features = 10}, x);
  }
};

/// Two blocks of 3x3 convolution + BatchNorm + ReLU + 2x2 max-pooling (28 -> 14 -> 7), then dense 128
/// with Dropout and dense 10. The BatchNorm template has use_running_average fixed to !train by the
/// top module, so the blocks never see `train`.
struct ConvBlock {
  nn::BatchNorm norm;
  std::int64_t features = 32;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const Tensor y = s(nn::Conv{.features = features, .kernel_size = {3, 3}, .use_bias = false}, x);
    return max_pool(relu(s(norm, y)), {.window = {2, 2}, .strides = {2, 2}});
  }
};

struct ConvModel {
  float drop_rate = kDefaultDropRate;
  static constexpr float kDefaultDropRate = 0.5f;
  Tensor operator()(nn::Scope& s, const Tensor& images, bool train) const {
    const auto norm = nn::BatchNorm{.use_running_average = !train};
    Tensor x = s(ConvBlock{.norm = norm, .features = 32}, images);
    x = s(ConvBlock{.norm = norm, .features = 64}, x);
    x = relu(s(nn::Dense{.features = 128}, reshape(x, {x.shape()[0], -1})));
    x = s(nn::Dropout{.rate = drop_rate, .deterministic = !train}, x);
    return s(nn::Dense{.features = 10}, x);
  }
};

}  // namespace models

// Reflection: a block's template field is named after the field ("dropout", "norm").
WEFT_RECORD(models::ResidualBlock, dropout, features);
WEFT_RECORD(models::ConvBlock, norm, features);

namespace {

using models::ConvModel;
using models::ResidualModel;

// ---------------------------------------------------------------- options

struct Options {
  std::string model = "residual";
  int epochs = 10;
  std::int64_t batch_size = 128;
  float lr = 1e-3f;
  std::uint64_t seed = 0;
  int threads = 0;  // 0: OpenMP's default (all cores)
  std::string data_dir = std::string(io::kFashionMnistDir);
  std::string checkpoint_dir;  // empty: no checkpoints
  bool resume = false;
  bool eval_only = false;
  float dropout = -1.0f;  // negative: the model's default
  bool data_parallel = false;
  bool jit = true;  // --no-jit: eager mode
  std::string log_dir;  // empty: no metric logs
  int log_every = 1;
};

/// One process, or this rank of a data-parallel job: rank 0 alone prints, saves and logs.
struct Ranks {
  int rank = 0;
  int size = 1;
  [[nodiscard]] bool leader() const { return rank == 0; }
};

constexpr const char* kUsage = R"(usage: weft-train [options]

Trains a model on Fashion-MNIST with Adam and prints the test accuracy after each epoch.

  --model NAME       residual (default): the seed's residual MLP, dense 784-256, ten blocks
                     x + Dropout(Dense(relu(Dense(x)))), dense 256-10;
                     cnn: two blocks of 3x3 convolution, BatchNorm, ReLU and max-pooling, then
                     dense 128 with Dropout and dense 10
  --epochs N         passes over the 60000 training images (default 10 for residual, 15 for cnn)
  --batch-size N     examples per step (default 128)
  --lr X             Adam's learning rate, decayed by a cosine schedule (default 0.001)
  --seed N           seed of every random key: initialisation, shuffling, dropout (default 0)
  --dropout X        the model's dropout rate (default 0.1 for residual, 0.5 for cnn)
  --threads N        threads for weft's kernels (default: all cores); results do not depend on it
  --data-dir DIR     the IDX files (default /usr/share/datasets/fashion-mnist, Debian's
                     dataset-fashion-mnist package)
  --checkpoint-dir DIR
                     saves the training state (parameters, Adam's state, step, key) after every
                     epoch into DIR/step_NNNNNN, keeping the last three
  --resume           continues from the latest checkpoint in --checkpoint-dir (from the start
                     when there is none); the options must be those of the interrupted run, and
                     the result is that of a run never interrupted
  --eval-only        prints the test accuracy of the latest checkpoint in --checkpoint-dir
  --log-dir DIR      writes the training loss and, after every epoch, the test accuracy as JSON
                     lines (DIR/metrics.jsonl, appended to) and TensorBoard events
                     (DIR/events.out.tfevents.*, a new file each run): tensorboard --logdir DIR
  --log-every N      with --log-dir: the loss every N steps, the mean over those N (default 1)
  --data-parallel    run under mpirun (or srun) as N ranks: each takes --batch-size / N rows of
                     every global batch, the gradients are averaged over the ranks, and rank 0
                     alone prints, saves and logs (--checkpoint-dir must be seen by every rank);
                     --resume works with any N. Each rank draws its own dropout masks
  --no-jit           runs the training and evaluation steps eagerly instead of compiled by
                     weft::jit (the same results, bit for bit; for comparison and debugging)
  --help             this text

The last line reads: final model=NAME test_accuracy=X wall_s=Y examples_per_s=Z params_crc32=C,
where Z counts the training examples of this run per second of training (0 when a resumed run
has nothing left to train; with --eval-only, the test examples per second of evaluation) and C
is the CRC-32 of the parameters (paths and float32 bytes in path order), the same on every rank
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "weft-train: " << msg << "\n(see weft-train --help)\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  bool epochs_given = false, log_every_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (!a.starts_with("--"))
      usage_error("unexpected argument '" + std::string(a) +
                  "'; weft-train takes options only, each written --name VALUE (e.g. --epochs 5)");
    if (a == "--resume" || a == "--eval-only" || a == "--data-parallel" || a == "--no-jit") {  // flags: no value
      if (a == "--no-jit")
        o.jit = false;
      else
        (a == "--resume" ? o.resume : a == "--eval-only" ? o.eval_only : o.data_parallel) = true;
      continue;
    }
    if (i + 1 >= argc) usage_error("option " + std::string(a) + " needs a value");
    const std::string v = argv[++i];
    try {
      std::size_t used = 0;
      auto whole = [&](auto parsed) {
        if (used != v.size()) throw std::invalid_argument(v);
        return parsed;
      };
      if (a == "--model") {
        if (v != "residual" && v != "cnn") usage_error("unknown model '" + v + "'; use residual or cnn");
        o.model = v;
      } else if (a == "--epochs") {
        o.epochs = whole(std::stoi(v, &used));
        epochs_given = true;
        if (o.epochs < 1) usage_error("--epochs must be at least 1");
      } else if (a == "--batch-size") {
        o.batch_size = whole(std::stoll(v, &used));
        if (o.batch_size < 1) usage_error("--batch-size must be at least 1");
      } else if (a == "--lr") {
        o.lr = whole(std::stof(v, &used));
        if (!(o.lr > 0.0f)) usage_error("--lr must be positive");
      } else if (a == "--seed") {
        // std::stoull reads "-1" as 2^64 - 1; a seed is written without a sign.
        if (v.empty() || !std::isdigit(static_cast<unsigned char>(v[0])))
          usage_error("--seed must be a non-negative integer (0 to 18446744073709551615), got '" + v + "'");
        o.seed = whole(std::stoull(v, &used));
      } else if (a == "--dropout") {
        o.dropout = whole(std::stof(v, &used));
        if (!(o.dropout >= 0.0f && o.dropout < 1.0f)) usage_error("--dropout must be in [0, 1), got " + v);
      } else if (a == "--threads") {
        o.threads = whole(std::stoi(v, &used));
        if (o.threads < 1) usage_error("--threads must be at least 1");
      } else if (a == "--data-dir") {
        o.data_dir = v;
      } else if (a == "--checkpoint-dir") {
        o.checkpoint_dir = v;
      } else if (a == "--log-dir") {
        o.log_dir = v;
      } else if (a == "--log-every") {
        o.log_every = whole(std::stoi(v, &used));
        log_every_given = true;
        if (o.log_every < 1) usage_error("--log-every must be at least 1");
      } else {
        usage_error("unknown option " + std::string(a));
      }
    } catch (const std::logic_error&) {
      usage_error("bad value '" + v + "' for " + std::string(a));
    }
  }
  if (!epochs_given && o.model == "cnn") o.epochs = 15;
  if (o.dropout < 0.0f) o.dropout = o.model == "cnn" ? ConvModel::kDefaultDropRate : ResidualModel::kDefaultDropRate;
  if ((o.resume || o.eval_only) && o.checkpoint_dir.empty())
    usage_error(std::string(o.resume ? "--resume" : "--eval-only") + " needs --checkpoint-dir");
  if (o.resume && o.eval_only) usage_error("--resume and --eval-only exclude each other");
  if (log_every_given && o.log_dir.empty()) usage_error("--log-every needs --log-dir");
#ifndef WEFT_TRAIN_DATA_PARALLEL
  if (o.data_parallel)
    usage_error("--data-parallel needs MPI, but this weft-train was built without it; install libopenmpi-dev and "
                "rebuild (meson's mpi option)");
#endif
  return o;
}

// ---------------------------------------------------------------- training

/// --log-dir's two files: the same scalars as JSON lines and as TensorBoard events.
struct MetricLogs {
  training::JsonLinesWriter json;
  training::TensorBoardWriter tensorboard;
  void write(std::int64_t step, const training::Scalars& scalars) {
    json.write_scalars(step, scalars);
    tensorboard.write_scalars(step, scalars);
  }
};

/// The logs of --log-dir, or none; an unwritable directory is named as the option (main's hint for
/// io::DataError is about --data-dir).
std::optional<MetricLogs> open_logs(const Options& o) {
  if (o.log_dir.empty()) return std::nullopt;
  try {
    return MetricLogs{training::JsonLinesWriter(std::filesystem::path(o.log_dir) / "metrics.jsonl"),
                      training::TensorBoardWriter(o.log_dir)};
  } catch (const io::DataError& e) {
    throw Error(std::string(e.what()) + " (in --log-dir " + o.log_dir + ")");
  }
}

// ---------------------------------------------------------------- checkpoints

/// The options that fix a run's data order, schedule and keys: a resumed run must share them.
io::SafetensorsMetadata run_options(const Options& o) {
  std::array<char, 32> lr{};
  std::snprintf(lr.data(), lr.size(), "%.9g", static_cast<double>(o.lr));
  std::array<char, 32> dropout{};
  std::snprintf(dropout.data(), dropout.size(), "%.9g", static_cast<double>(o.dropout));
  return {{"model", o.model},
          {"epochs", std::to_string(o.epochs)},
          {"batch_size", std::to_string(o.batch_size)},
          {"lr", lr.data()},
          {"seed", std::to_string(o.seed)},
          {"dropout", dropout.data()}};
}

/// A checkpoint of the run after `epoch` epochs, and the test accuracy then.
struct Restart {
  io::TrainingState state;
  int epoch = 0;
  double accuracy = 0;
};

/// Checkpoint errors are not about --data-dir (main's hint for io::DataError): they say where they are.
template <class F>
auto in_checkpoint_dir(const Options& o, F&& f) {
  try {
    return f();
  } catch (const io::DataError& e) {
    throw Error(std::string(e.what()) + " (in --checkpoint-dir " + o.checkpoint_dir + ")");
  }
}

std::optional<Restart> latest_checkpoint(const io::CheckpointManager& manager, const Options& o) {
  return in_checkpoint_dir(o, [&]() -> std::optional<Restart> {
    const auto step = manager.latest_step();
    if (!step) return std::nullopt;
    Restart r{io::from_checkpoint(manager.restore(*step))};
    for (const auto& [key, value] : run_options(o)) {
      const auto it = r.state.metadata.find(key);
      if (it == r.state.metadata.end() || it->second != value)
        throw Error("the checkpoint " + manager.step_directory(*step).string() + " was written with " + key + " " +
                    (it == r.state.metadata.end() ? std::string("unknown") : it->second) + " but this run has " + value +
                    "; give the options of the run that wrote it");
    }
    if (r.state.rng != Key(o.seed))
      throw Error("the checkpoint " + manager.step_directory(*step).string() + " holds another random key than --seed " +
                  std::to_string(o.seed) + " gives; it was not written by weft-train");
    try {
      r.epoch = std::stoi(r.state.metadata.at("epoch"));
      r.accuracy = std::stod(r.state.metadata.at("test_accuracy"));
    } catch (const std::exception&) {
      throw Error("the checkpoint " + manager.step_directory(*step).string() +
                  " has no valid epoch and test_accuracy; it was not written by weft-train");
    }
    return r;
  });
}

void save_checkpoint(const io::CheckpointManager& manager, const Options& o, io::TrainingState state, int epoch,
                     double accuracy) {
  state.metadata = run_options(o);
  std::array<char, 32> exact{};
  std::snprintf(exact.data(), exact.size(), "%.17g", accuracy);  // the double itself, for the final line
  state.metadata["epoch"] = std::to_string(epoch);
  state.metadata["test_accuracy"] = exact.data();
  in_checkpoint_dir(o, [&] { manager.save(state.step, io::to_checkpoint(state)); });
}

/// The sum over ranks of every rank's `tree` (the tree itself in one process).
Variables sum_over_ranks(const Variables& tree, const Ranks& ranks) {
#ifdef WEFT_TRAIN_DATA_PARALLEL
  if (ranks.size > 1) return dist::psum(tree);
#endif
  (void)ranks;
  return tree;
}

/// The mean over ranks of every rank's `tree` (the tree itself in one process).
Variables mean_over_ranks(const Variables& tree, const Ranks& ranks) {
#ifdef WEFT_TRAIN_DATA_PARALLEL
  if (ranks.size > 1) return dist::pmean(tree);
#endif
  (void)ranks;
  return tree;
}

/// The test accuracy; with several ranks, each counts the correct answers of its part of the test set.
template <class Forward>
double evaluate(const Forward& forward, const Variables& variables, const Tensor& images, const Tensor& labels,
                const Ranks& ranks) {
  const std::int64_t n = images.shape()[0];
  const std::int64_t first = n * ranks.rank / ranks.size, last = n * (ranks.rank + 1) / ranks.size;
  std::int32_t correct = 0;
  if (last > first) {
    for (const io::Batch& b : io::batches(slice_axis(images, 0, first, last), slice_axis(labels, 0, first, last), 1000,
                                          std::nullopt, false)) {
      const Tensor logits = forward(variables, b.images);
      correct += static_cast<std::int32_t>(sum(argmax(logits, -1) == b.labels).item());
    }
  }
  const Variables total = sum_over_ranks(Variables::from_leaves({{"eval/correct", full(Shape{}, correct)}}), ranks);
  return static_cast<double>(total.at("eval/correct").to_int_vector()[0]) / static_cast<double>(n);
}

/// Checks that every rank holds the same parameters (the point of a deterministic reduction), so
/// that the checksum on the final line stands for all of them.
void check_ranks_agree(std::uint32_t crc, const Ranks& ranks) {
  if (ranks.size == 1) return;
#ifdef WEFT_TRAIN_DATA_PARALLEL
  const auto word = static_cast<std::int32_t>(crc);
  const Variables root = dist::broadcast(Variables::from_leaves({{"check/crc", full(Shape{}, word)}}), 0);
  const bool same = root.at("check/crc").to_int_vector()[0] == word;
  const Variables differ = dist::psum(Variables::from_leaves({{"check/differ", full(Shape{}, same ? 0 : 1)}}));
  if (const std::int32_t n = differ.at("check/differ").to_int_vector()[0]; n != 0)
    throw Error("the parameters of " + std::to_string(n) + " rank(s) differ from rank 0's after training; the "
                "data-parallel reduction should keep them identical (a bug in weft::dist: please report it)");
#endif
}

/// --data-dir names a directory; a file there would otherwise read as "directory does not exist".
void check_data_dir(const Options& o) {
  std::error_code ec;
  const auto status = std::filesystem::status(o.data_dir, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_directory(status))
    usage_error("--data-dir " + o.data_dir +
                " is a file, not a directory; pass the directory that holds the four Fashion-MNIST IDX files "
                "(default " + std::string(io::kFashionMnistDir) + ")");
}

/// Checks the loaded data against the options before anything trains, so that a mistake shows at
/// once with its fix, not an epoch later or as an error from deep inside an op.
void check_data(const io::FashionMnist& data, const Options& o) {
  const std::int64_t n_train = data.train_images.shape()[0], n_test = data.test_images.shape()[0];
  const std::string where = " in " + o.data_dir;
  if (n_train == 0)
    usage_error("the training split" + where + " (train-images-idx3-ubyte) holds no images; pass --data-dir "
                "a directory with the complete Fashion-MNIST files");
  if (n_test == 0)
    usage_error("the test split" + where + " (t10k-images-idx3-ubyte) holds no images; pass --data-dir "
                "a directory with the complete Fashion-MNIST files");
  const Shape& train_shape = data.train_images.shape();
  const Shape& test_shape = data.test_images.shape();
  if (train_shape[1] != test_shape[1] || train_shape[2] != test_shape[2])
    usage_error("the test images" + where + " (t10k-images-idx3-ubyte) are " + std::to_string(test_shape[1]) + "x" +
                std::to_string(test_shape[2]) + " but the training images (train-images-idx3-ubyte) are " +
                std::to_string(train_shape[1]) + "x" + std::to_string(train_shape[2]) +
                "; both splits must come from the same data set");
  // Both models end in a dense layer over the flattened image: the residual model is sized for
  // any image, the cnn's two 2x2 poolings need at least 4x4.
  if (o.model == "cnn" && (train_shape[1] < 4 || train_shape[2] < 4))
    usage_error("--model cnn needs images of at least 4x4 (two 2x2 poolings), but the images" + where + " are " +
                std::to_string(train_shape[1]) + "x" + std::to_string(train_shape[2]) + "; use --model residual");
  if (o.batch_size > n_train)
    usage_error("--batch-size " + std::to_string(o.batch_size) + " is larger than the " + std::to_string(n_train) +
                " training images" + where + " (the last partial batch is dropped, so no step would run); use "
                "--batch-size " + std::to_string(n_train) + " or less");
}

template <class Model>
int train(const Model& model, const Options& o, const Ranks& ranks) {
  const auto start = std::chrono::steady_clock::now();
  check_data_dir(o);
  // Opened first, so that a --log-dir that cannot be written fails before any work.
  std::optional<MetricLogs> logs = ranks.leader() && !o.eval_only ? open_logs(o) : std::nullopt;
  const io::FashionMnist data = io::load_fashion_mnist(o.data_dir);
  check_data(data, o);
  if (o.batch_size % ranks.size != 0)
    usage_error("--batch-size " + std::to_string(o.batch_size) + " does not split evenly over " +
                std::to_string(ranks.size) + " ranks; use a multiple of " + std::to_string(ranks.size));
  const Key root(o.seed);
  const Key init_key = fold_in(root, 0), shuffle_key = fold_in(root, 1), dropout_key = fold_in(root, 2);

  Variables variables = nn::init(model, init_key, slice_axis(data.train_images, 0, 0, 2), /*train=*/false);
  if (ranks.leader()) {
    std::cout << "model=" << o.model << ": " << variables.collection("params").num_elements() << " parameters";
    if (ranks.size > 1) std::cout << ", " << ranks.size << " ranks of " << o.batch_size / ranks.size << " examples a step";
    std::cout << "\n";
  }

  const std::int64_t steps_per_epoch = io::num_batches(data.train_images.shape()[0], o.batch_size, true);
  const auto optimizer = optim::adam(optim::cosine_decay_schedule(o.lr, steps_per_epoch * o.epochs));
  Variables opt_state = optimizer.init(variables.collection("params"));

  // The loss of one batch, and the updated batch statistics as auxiliary output.
  const auto loss_fn = [&model](const Variables& vars, const Tensor& x, const Tensor& y, Key key) {
    auto [logits, state] = nn::apply(model, vars, nn::Mutable{"batch_stats"}, Rngs{{"dropout", key}}, x, true);
    return std::pair{mean(losses::softmax_cross_entropy(logits, y)), state};
  };
  // The steps as pure functions, compiled by weft::jit unless --no-jit. In one process a step is
  // one function (gradient, Adam, apply_updates); with several ranks the gradients are averaged
  // between its two halves.
  const auto grad_fn = [&loss_fn](const Variables& vars, const Tensor& x, const Tensor& y, Key key) {
    auto [loss, state, grads] = value_and_grad_with_aux(loss_fn)(vars, x, y, key);
    return std::tuple{loss, state, grads};
  };
  const auto update_fn = [&optimizer](const Variables& vars, const Variables& opt, const Variables& grads,
                                      const Variables& state) {
    const Variables params = vars.collection("params");
    auto [updates, next_opt] = optimizer.update(grads, opt, params);
    return std::pair{optim::apply_updates(params, updates).merge(state), next_opt};
  };
  const auto step_fn = [&](const Variables& vars, const Variables& opt, const Tensor& x, const Tensor& y, Key key) {
    auto [loss, state, grads] = grad_fn(vars, x, y, key);
    auto [next_vars, next_opt] = update_fn(vars, opt, grads, state);
    return std::tuple{next_vars, next_opt, loss};
  };
  const auto forward_fn = [&model](const Variables& vars, const Tensor& x) { return nn::apply(model, vars, x, false); };
  const auto jitted_grad = jit(grad_fn, {.name = "grad_step"});
  const auto jitted_update = jit(update_fn, {.name = "update_step"});
  const auto jitted_step = jit(step_fn, {.name = "train_step"});
  const auto jitted_forward = jit(forward_fn, {.name = "eval_step"});
  const auto forward = [&](const Variables& vars, const Tensor& x) {
    return o.jit ? jitted_forward(vars, x) : forward_fn(vars, x);
  };

  double accuracy = 0;
  std::int64_t step = 0;
  int first_epoch = 1;
  std::optional<io::CheckpointManager> checkpoints;
  if (!o.checkpoint_dir.empty()) checkpoints.emplace(o.checkpoint_dir);
  if (o.resume || o.eval_only) {
    if (auto restart = latest_checkpoint(*checkpoints, o)) {
      variables = in_checkpoint_dir(o, [&] { return io::restore(variables, restart->state.variables); });
      opt_state = in_checkpoint_dir(o, [&] { return io::restore(opt_state, restart->state.opt_state); });
      step = restart->state.step;
      first_epoch = restart->epoch + 1;
      accuracy = restart->accuracy;
      if (ranks.leader())
        std::cout << "resuming after epoch " << restart->epoch << " (step " << step << ") from " << o.checkpoint_dir
                  << "\n";
    } else if (o.eval_only) {
      throw Error("no checkpoint in --checkpoint-dir " + o.checkpoint_dir + "; train with --checkpoint-dir first");
    } else {
      if (ranks.leader()) std::cout << "no checkpoint in " << o.checkpoint_dir << " yet: training from the start\n";
    }
  }
  if (o.eval_only) {
    const auto eval_start = std::chrono::steady_clock::now();
    accuracy = evaluate(forward, variables, data.test_images, data.test_labels, ranks);
    const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::uint32_t crc = examples::params_crc32(variables);
    check_ranks_agree(crc, ranks);
    if (ranks.leader())
      std::printf("final model=%s test_accuracy=%.4f wall_s=%.1f examples_per_s=%.0f params_crc32=%08x\n",
                  o.model.c_str(), accuracy, wall, static_cast<double>(data.test_images.shape()[0]) / std::max(eval_s, 1e-9),
                  crc);
    return 0;
  }

  double train_seconds = 0;
  std::int64_t trained = 0;
  training::Average logged_loss;  // the losses since the last one logged
  for (int epoch = first_epoch; epoch <= o.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    training::ProgressBar progress("epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs),
                                   steps_per_epoch, o.batch_size);
    training::Average epoch_loss;
    std::int64_t done = 0;
    for (const io::Batch& b : io::sharded_batches(data.train_images, data.train_labels, o.batch_size,
                                                  fold_in(shuffle_key, epoch), true, io::Shard{ranks.rank, ranks.size})) {
      // With several ranks each draws its own dropout masks, as each device does in a pmap program.
      const Key step_key = ranks.size == 1 ? fold_in(dropout_key, step) : fold_in(fold_in(dropout_key, step), ranks.rank);
      Tensor loss;
      if (ranks.size == 1) {
        // The state is handed over (moved): the jitted step updates params and moments in place.
        std::tie(variables, opt_state, loss) =
            o.jit ? jitted_step(std::move(variables), std::move(opt_state), b.images, b.labels, step_key)
                  : step_fn(variables, opt_state, b.images, b.labels, step_key);
      } else {
        auto [batch_loss, state, grads] = o.jit ? jitted_grad(variables, b.images, b.labels, step_key)
                                                : grad_fn(variables, b.images, b.labels, step_key);
        // One reduction per step: the gradients, the batch statistics (so that every rank keeps the
        // same ones) and the loss, averaged over the ranks' equal shares of the global batch.
        const Variables mean =
            mean_over_ranks(grads.merge(state).merge(Variables::from_leaves({{"metrics/loss", batch_loss}})), ranks);
        loss = mean.at("metrics/loss");
        std::tie(variables, opt_state) =
            o.jit ? jitted_update(std::move(variables), std::move(opt_state), mean.collection("params"),
                                  mean.collection("batch_stats"))
                  : update_fn(variables, opt_state, mean.collection("params"), mean.collection("batch_stats"));
      }
      const double batch_loss = loss.item();
      if (!std::isfinite(batch_loss)) {
        if (!ranks.leader()) return 1;
        std::cerr << "\nweft-train: training diverged: the loss is " << batch_loss << " at step " << step + 1
                  << " (epoch " << epoch << "); use a smaller --lr (got " << o.lr << ")\n";
        return 1;
      }
      epoch_loss = epoch_loss.merge(training::Average::of_batch(batch_loss));
      ++done;
      ++step;
      if (logs) {
        logged_loss = logged_loss.merge(training::Average::of_batch(batch_loss));
        if (step % o.log_every == 0) {
          logs->write(step, {{"train_loss", logged_loss.compute()}});
          logged_loss = {};
        }
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
      if (ranks.leader()) progress.update(done, {{"loss", epoch_loss.compute()}}, seconds);
    }
    train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    trained += done * o.batch_size;
    accuracy = evaluate(forward, variables, data.test_images, data.test_labels, ranks);
    if (logs) logs->write(step, {{"test_accuracy", accuracy}});
    if (checkpoints && ranks.leader())
      save_checkpoint(*checkpoints, o, {variables, opt_state, step, root, {}}, epoch, accuracy);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    if (ranks.leader()) {
      std::printf("epoch %d/%d: train loss %.4f, test accuracy %.4f (%.1f s)\n", epoch, o.epochs,
                  epoch_loss.compute(), accuracy, seconds);
      std::fflush(stdout);
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double examples_per_s = trained > 0 ? static_cast<double>(trained) / std::max(train_seconds, 1e-9) : 0.0;
  const std::uint32_t crc = examples::params_crc32(variables);
  check_ranks_agree(crc, ranks);
  if (ranks.leader())
    std::printf("final model=%s test_accuracy=%.4f wall_s=%.1f examples_per_s=%.0f params_crc32=%08x\n",
                o.model.c_str(), accuracy, wall, examples_per_s, crc);
  return 0;
}

/// Runs the training and turns its errors into messages: with several ranks, an error on one rank
/// ends the job (the others may be waiting for it in a collective), and names the rank.
int run(const Options& o, const Ranks& ranks) {
  const std::string who = ranks.size > 1 ? "weft-train (rank " + std::to_string(ranks.rank) + "): " : "weft-train: ";
  const auto fail = [&](const std::string& message) {
    std::cerr << who << message << "\n";
#ifdef WEFT_TRAIN_DATA_PARALLEL
    if (ranks.size > 1) dist::abort(1);
#endif
    return 1;
  };
  try {
    if (o.model == "cnn") return train(ConvModel{.drop_rate = o.dropout}, o, ranks);
    return train(ResidualModel{.drop_rate = o.dropout}, o, ranks);
  } catch (const io::DataError& e) {
    return fail(std::string(e.what()) + "\n(weft-train reads the files from --data-dir, default " +
                std::string(io::kFashionMnistDir) + ")");
  } catch (const Error& e) {
    return fail(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) omp_set_num_threads(o.threads);
#ifdef WEFT_TRAIN_DATA_PARALLEL
  if (o.data_parallel) {
    const dist::Session mpi(argc, argv);
    return run(o, Ranks{mpi.rank(), mpi.size()});
  }
#endif
  return run(o, Ranks{});
}
