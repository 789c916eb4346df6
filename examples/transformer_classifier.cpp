// transformer-classifier: a small Transformer encoder that reads each Fashion-MNIST image as a
// sequence of its 28 rows (28 pixels each) and classifies it.
//
//   transformer-classifier [--epochs N] [--dropout X] [--data-dir DIR] [--train-examples N] [--threads N]
//
// The Linen and Optax it mirrors:
//
//   class EncoderBlock(nn.Module):
//     attention: nn.MultiHeadDotProductAttention   # templates: their deterministic fixed above
//     dropout: nn.Dropout
//     mlp_dim: int = 128
//     @nn.compact
//     def __call__(self, x):
//       x = x + self.dropout(self.attention(nn.LayerNorm()(x)))
//       h = nn.Dense(self.mlp_dim)(nn.LayerNorm()(x))
//       h = nn.Dense(x.shape[-1])(nn.gelu(h))
//       return x + self.dropout(h)
//
//   class TransformerClassifier(nn.Module):
//     dropout_rate: float = 0.1
//     @nn.compact
//     def __call__(self, images, train: bool):
//       x = images.reshape((images.shape[0], 28, 28))            # 28 rows of 28 pixels
//       x = nn.Dense(64)(x)
//       x = x + self.param('pos_embedding', nn.initializers.normal(0.02), (28, 64))
//       attention = nn.MultiHeadDotProductAttention(num_heads=4, dropout_rate=self.dropout_rate,
//                                                   deterministic=not train)
//       dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
//       for _ in range(2):
//         x = EncoderBlock(attention, dropout)(x)
//       x = nn.LayerNorm()(x).mean(axis=1)
//       return nn.Dense(10)(x)
//
//   schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-3, warmup_steps, total_steps)
//   tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule))
//
// The last line of output reads `final test_accuracy=0.8512 wall_s=123.4`.
#include <chrono>
#include <cstdio>
#include <string>

#include "example_cli.hpp"
#include "weft/autodiff.hpp"
#include "weft/io/batches.hpp"
#include "weft/losses.hpp"
#include "weft/nn/attention.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/optim.hpp"
#include "weft/weft.hpp"

using namespace weft;

namespace models {

/// Pre-LayerNorm encoder block. Its attention and dropout arrive as templates with
/// `deterministic` already fixed by the top module, so the block never sees `train`. The one
/// dropout field serves both residual branches, as Linen's self.dropout called twice: each call
/// draws its own mask (the scope's random counter moves on).
struct EncoderBlock {
  nn::MultiHeadDotProductAttention attention;
  nn::Dropout dropout;
  std::int64_t mlp_dim = 128;
  Tensor operator()(nn::Scope& s, Tensor x) const {
    x = x + s(dropout, s(attention, s(nn::LayerNorm{}, x)));
    Tensor h = s(nn::Dense{.features = mlp_dim}, s(nn::LayerNorm{}, x));
    h = s(nn::Dense{.features = x.shape()[x.rank() - 1]}, gelu(h));
    return x + s(dropout, h);
  }
};

struct TransformerClassifier {
  float dropout_rate = 0.1f;
  std::int64_t width = 64;
  std::int64_t num_heads = 4;
  int num_blocks = 2;
  Tensor operator()(nn::Scope& s, const Tensor& images, bool train) const {
    const std::int64_t rows = images.shape()[1], cols = images.shape()[2];
    Tensor x = reshape(images, {images.shape()[0], rows, cols});  // NHWC with C = 1: a sequence of rows
    x = s(nn::Dense{.features = width}, x);
    x = x + s.param("pos_embedding", core::initializers::normal(0.02f), Shape{rows, width});
    const auto attention = nn::MultiHeadDotProductAttention{
        .num_heads = num_heads, .dropout_rate = dropout_rate, .deterministic = !train};
    const auto dropout = nn::Dropout{.rate = dropout_rate, .deterministic = !train};
    for (int i = 0; i < num_blocks; ++i) x = s(EncoderBlock{.attention = attention, .dropout = dropout}, x);
    x = mean(s(nn::LayerNorm{}, x), {1});
    return s(nn::Dense{.features = 10}, x);
  }
};

}  // namespace models

// Reflection: the block's template fields are its children "attention" and "dropout".
WEFT_RECORD(models::EncoderBlock, attention, dropout, mlp_dim);

namespace {

using models::TransformerClassifier;

struct Options {
  int epochs = 1;
  float dropout = 0.1f;
  std::int64_t batch_size = 128;
  float peak_lr = 1e-3f;
  std::string data_dir = std::string(io::kFashionMnistDir);
  std::int64_t train_examples = 0;  // 0: all
  int threads = 0;                  // 0: all cores
};

constexpr const char* kUsage = R"(usage: transformer-classifier [options]

A Transformer encoder on Fashion-MNIST, each image a sequence of its 28 rows: dense 64 row
embedding plus a learned position embedding, two pre-LayerNorm blocks (4-head self-attention,
MLP 128 with GELU, dropout on both residual branches), LayerNorm, mean over the rows, dense 10.
AdamW after clipping the gradients' global norm to 1; the learning rate warms up linearly to
0.001 over the first 10% of the steps, then decays to 0 along a cosine. Batch 128.

  --epochs N          passes over the training images (default 1)
  --dropout X         dropout rate of the attention weights and the residual branches (default 0.1)
  --data-dir DIR      the IDX files (default /usr/share/datasets/fashion-mnist, Debian's
                      dataset-fashion-mnist package)
  --train-examples N  train on the first N training images only (default: all 60000)
  --threads N         threads for weft's kernels (default: all cores); results do not depend on it
  --help              this text

Each epoch prints the train loss and accuracy and the test loss and accuracy; the last line
reads: final test_accuracy=X wall_s=Y
)";

Options parse(int argc, char** argv) {
  Options o;
  examples::Arguments args("transformer-classifier", kUsage, argc, argv);
  while (const auto option = args.next()) {
    if (*option == "--epochs") {
      o.epochs = args.integer(1);
    } else if (*option == "--dropout") {
      o.dropout = args.real(0.0f, 1.0f);
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
  return o;
}

/// Test loss and accuracy, 1000 images at a time.
std::pair<double, double> evaluate(const TransformerClassifier& model, const Variables& variables,
                                   const Tensor& images, const Tensor& labels) {
  double loss_sum = 0, correct = 0;
  for (const io::Batch& b : io::batches(images, labels, 1000, std::nullopt, /*drop_last=*/false)) {
    const Tensor logits = nn::apply(model, variables, b.images, /*train=*/false);
    loss_sum += sum(losses::softmax_cross_entropy_with_integer_labels(logits, b.labels)).item();
    correct += sum(astype(argmax(logits, -1) == b.labels, DType::float32)).item();
  }
  const auto n = static_cast<double>(images.shape()[0]);
  return {loss_sum / n, correct / n};
}

int train(const Options& o, const io::FashionMnist& ds, std::chrono::steady_clock::time_point start) {
  const TransformerClassifier model{.dropout_rate = o.dropout};
  const Key root(0);
  const Key init_key = fold_in(root, 0), shuffle_key = fold_in(root, 1), dropout_key = fold_in(root, 2);
  Variables params = nn::init(model, init_key, slice_axis(ds.train_images, 0, 0, 1), /*train=*/false).collection("params");
  std::printf("transformer-classifier: %lld parameters\n", static_cast<long long>(params.num_elements()));

  const std::int64_t total_steps = io::num_batches(ds.train_images.shape()[0], o.batch_size, true) * o.epochs;
  const std::int64_t warmup_steps = std::max<std::int64_t>(1, total_steps / 10);
  // decay_steps counts the warm-up too, as Optax's; a run of a single step has nothing to decay.
  const auto schedule = optim::warmup_cosine_decay_schedule(0.0f, o.peak_lr, warmup_steps,
                                                            std::max(total_steps, warmup_steps + 1));
  const auto tx = optim::chain(optim::clip_by_global_norm(1.0f), optim::adamw(schedule));
  Variables opt_state = tx.init(params);

  const auto loss_fn = [&model](const Variables& p, const Tensor& x, const Tensor& y, Key key) {
    const Tensor logits = nn::apply(model, p, Rngs{{"dropout", key}}, x, /*train=*/true);
    return std::pair{mean(losses::softmax_cross_entropy_with_integer_labels(logits, y)), logits};
  };

  double test_accuracy = 0;
  std::int64_t step = 0;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    double loss_sum = 0, correct = 0;
    std::int64_t seen = 0;
    for (const io::Batch& b : io::batches(ds.train_images, ds.train_labels, o.batch_size, fold_in(shuffle_key, epoch), true)) {
      auto [loss, logits, grads] = value_and_grad_with_aux(loss_fn)(params, b.images, b.labels, fold_in(dropout_key, step));
      auto [updates, new_opt_state] = tx.update(grads, opt_state, params);
      params = optim::apply_updates(params, updates);
      opt_state = std::move(new_opt_state);
      loss_sum += loss.item() * static_cast<double>(b.labels.shape()[0]);
      correct += sum(astype(argmax(logits, -1) == b.labels, DType::float32)).item();
      seen += b.labels.shape()[0];
      ++step;
    }
    const auto [test_loss, accuracy] = evaluate(model, params, ds.test_images, ds.test_labels);
    test_accuracy = accuracy;
    std::printf("epoch %d/%d: train_loss %.4f, train_accuracy %.4f, test_loss %.4f, test_accuracy %.4f\n", epoch,
                o.epochs, loss_sum / static_cast<double>(seen), correct / static_cast<double>(seen), test_loss,
                test_accuracy);
    std::fflush(stdout);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("final test_accuracy=%.4f wall_s=%.1f\n", test_accuracy, wall);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto start = std::chrono::steady_clock::now();
  const Options o = parse(argc, argv);
  examples::set_threads(o.threads);
  const io::FashionMnist ds = examples::load_data("transformer-classifier", o.data_dir, o.train_examples, o.batch_size);
  try {
    return train(o, ds, start);
  } catch (const Error& e) {
    std::cerr << "transformer-classifier: " << e.what() << "\n";
    return 1;
  }
}
