// flax-mnist: Flax's examples/mnist (train.py) ported line for line, on Fashion-MNIST.
//
//   flax-mnist [--epochs N] [--data-dir DIR] [--train-examples N] [--threads N]
//
// The Python it mirrors (flax/examples/mnist/train.py, with configs/default.py's learning_rate 0.1,
// momentum 0.9, batch_size 128):
//
//   class CNN(nn.Module):
//     @nn.compact
//     def __call__(self, x):
//       x = nn.Conv(features=32, kernel_size=(3, 3))(x)
//       x = nn.relu(x)
//       x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
//       x = nn.Conv(features=64, kernel_size=(3, 3))(x)
//       x = nn.relu(x)
//       x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
//       x = x.reshape((x.shape[0], -1))  # flatten
//       x = nn.Dense(features=256)(x)
//       x = nn.relu(x)
//       x = nn.Dense(features=10)(x)
//       return x
//
//   def apply_model(state, images, labels):
//     def loss_fn(params):
//       logits = state.apply_fn({'params': params}, images)
//       one_hot = jax.nn.one_hot(labels, 10)
//       loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
//       return loss, logits
//     grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
//     (loss, logits), grads = grad_fn(state.params)
//     accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
//     return grads, loss, accuracy
//
//   def train_epoch(state, train_ds, batch_size, rng):
//     steps_per_epoch = len(train_ds['image']) // batch_size
//     perms = jax.random.permutation(rng, len(train_ds['image']))
//     perms = perms[:steps_per_epoch * batch_size].reshape((steps_per_epoch, batch_size))
//     for perm in perms:
//       grads, loss, accuracy = apply_model(state, train_ds['image'][perm, ...], train_ds['label'][perm, ...])
//       state = update_model(state, grads)   # state.apply_gradients(grads=grads)
//       epoch_loss.append(loss); epoch_accuracy.append(accuracy)
//     return state, np.mean(epoch_loss), np.mean(epoch_accuracy)
//
//   def train_and_evaluate(config, workdir):
//     train_ds, test_ds = get_datasets()           # images / 255.0, shape [n, 28, 28, 1]
//     rng = jax.random.key(0)
//     rng, init_rng = jax.random.split(rng)
//     params = CNN().init(init_rng, jnp.ones([1, 28, 28, 1]))['params']
//     tx = optax.sgd(config.learning_rate, config.momentum)
//     for epoch in range(1, config.num_epochs + 1):
//       rng, input_rng = jax.random.split(rng)
//       state, train_loss, train_accuracy = train_epoch(state, train_ds, config.batch_size, input_rng)
//       _, test_loss, test_accuracy = apply_model(state, test_ds['image'], test_ds['label'])
//       logging.info('epoch:% 3d, train_loss: %.4f, train_accuracy: %.2f, test_loss: %.4f, test_accuracy: %.2f'
//                    % (epoch, train_loss, train_accuracy * 100, test_loss, test_accuracy * 100))
//
// The last line of output reads `final test_accuracy=0.8612 wall_s=123.4`.
#include <chrono>
#include <cstdio>
#include <string>

#include "example_cli.hpp"
#include "weft/autodiff.hpp"
#include "weft/io/batches.hpp"
#include "weft/losses.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/linear.hpp"
#include "weft/optim.hpp"
#include "weft/weft.hpp"

using namespace weft;

namespace {

struct CNN {
  Tensor operator()(nn::Scope& s, Tensor x) const {
    x = s(nn::Conv{.features = 32, .kernel_size = {3, 3}}, x);
    x = relu(x);
    x = avg_pool(x, {.window = {2, 2}, .strides = {2, 2}});
    x = s(nn::Conv{.features = 64, .kernel_size = {3, 3}}, x);
    x = relu(x);
    x = avg_pool(x, {.window = {2, 2}, .strides = {2, 2}});
    x = reshape(x, {x.shape()[0], -1});  // flatten
    x = s(nn::Dense{.features = 256}, x);
    x = relu(x);
    x = s(nn::Dense{.features = 10}, x);
    return x;
  }
};

struct Config {
  float learning_rate = 0.1f;
  float momentum = 0.9f;
  std::int64_t batch_size = 128;
  int num_epochs = 1;
  std::string data_dir = std::string(io::kFashionMnistDir);
  std::int64_t train_examples = 0;  // 0: all
  int threads = 0;                  // 0: all cores
};

constexpr const char* kUsage = R"(usage: flax-mnist [options]

Flax's examples/mnist on Fashion-MNIST: a CNN (two 3x3 convolutions with ReLU and 2x2 average
pooling, dense 256, dense 10) trained with SGD (learning rate 0.1, momentum 0.9, batch 128).

  --epochs N          passes over the training images (default 1)
  --data-dir DIR      the IDX files (default /usr/share/datasets/fashion-mnist, Debian's
                      dataset-fashion-mnist package)
  --train-examples N  train on the first N training images only (default: all 60000)
  --threads N         threads for weft's kernels (default: all cores); results do not depend on it
  --help              this text

Each epoch prints Flax's log line (train and test loss, accuracies in percent); the last line
reads: final test_accuracy=X wall_s=Y
)";

Config parse(int argc, char** argv) {
  Config c;
  examples::Arguments args("flax-mnist", kUsage, argc, argv);
  while (const auto option = args.next()) {
    if (*option == "--epochs") {
      c.num_epochs = args.integer(1);
    } else if (*option == "--data-dir") {
      c.data_dir = args.value();
    } else if (*option == "--train-examples") {
      c.train_examples = args.integer<std::int64_t>(1);
    } else if (*option == "--threads") {
      c.threads = args.integer(1);
    } else {
      args.unknown();
    }
  }
  return c;
}

/// The loss and accuracy of a batch, and the gradients of the loss (Flax's apply_model).
struct Applied {
  Variables grads;
  double loss = 0;
  double accuracy = 0;
};

Applied apply_model(const CNN& cnn, const Variables& params, const Tensor& images, const Tensor& labels) {
  const auto loss_fn = [&](const Variables& p) {
    const Tensor logits = nn::apply(cnn, p, images);
    const Tensor one_hot = weft::one_hot(labels, 10);
    const Tensor loss = mean(losses::softmax_cross_entropy(logits, one_hot));
    return std::pair{loss, logits};
  };
  auto [loss, logits, grads] = value_and_grad_with_aux(loss_fn)(params);
  const double accuracy = mean(astype(argmax(logits, -1) == labels, DType::float32)).item();
  return {std::move(grads), loss.item(), accuracy};
}

/// Flax's apply_model on the whole test set, without the gradients it does not use. Run in slices
/// of 1000 images: the first convolution of all 10000 at once would take 1 GB; the mean over the
/// slices' sums is the same number.
std::pair<double, double> evaluate(const CNN& cnn, const Variables& params, const Tensor& images, const Tensor& labels) {
  const std::int64_t n = images.shape()[0];
  double loss_sum = 0, correct = 0;
  for (const io::Batch& b : io::batches(images, labels, 1000, std::nullopt, /*drop_last=*/false)) {
    const Tensor logits = nn::apply(cnn, params, b.images);
    loss_sum += sum(losses::softmax_cross_entropy(logits, weft::one_hot(b.labels, 10))).item();
    correct += sum(astype(argmax(logits, -1) == b.labels, DType::float32)).item();
  }
  return {loss_sum / static_cast<double>(n), correct / static_cast<double>(n)};
}

int train_and_evaluate(const Config& config, const io::FashionMnist& ds, std::chrono::steady_clock::time_point start) {
  Key rng(0);
  auto keys = split(rng);
  rng = keys[0];
  const Key init_rng = keys[1];
  const CNN cnn;
  Variables params = nn::init(cnn, init_rng, ones(Shape{1, 28, 28, 1})).collection("params");
  const auto tx = optim::sgd(config.learning_rate, config.momentum);
  Variables opt_state = tx.init(params);

  double test_accuracy = 0;
  for (int epoch = 1; epoch <= config.num_epochs; ++epoch) {
    keys = split(rng);
    rng = keys[0];
    const Key input_rng = keys[1];
    // train_epoch: io::batches shuffles with jax.random.permutation and drops the partial batch.
    double loss_sum = 0, accuracy_sum = 0;
    std::int64_t steps = 0;
    for (const io::Batch& b : io::batches(ds.train_images, ds.train_labels, config.batch_size, input_rng, true)) {
      const Applied applied = apply_model(cnn, params, b.images, b.labels);
      auto [updates, new_opt_state] = tx.update(applied.grads, opt_state, params);  // state.apply_gradients
      params = optim::apply_updates(params, updates);
      opt_state = std::move(new_opt_state);
      loss_sum += applied.loss;
      accuracy_sum += applied.accuracy;
      ++steps;
    }
    const double train_loss = loss_sum / static_cast<double>(steps);
    const double train_accuracy = accuracy_sum / static_cast<double>(steps);
    const auto [test_loss, accuracy] = evaluate(cnn, params, ds.test_images, ds.test_labels);
    test_accuracy = accuracy;
    std::printf("epoch:% 3d, train_loss: %.4f, train_accuracy: %.2f, test_loss: %.4f, test_accuracy: %.2f\n", epoch,
                train_loss, train_accuracy * 100, test_loss, test_accuracy * 100);
    std::fflush(stdout);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("final test_accuracy=%.4f wall_s=%.1f\n", test_accuracy, wall);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto start = std::chrono::steady_clock::now();
  const Config config = parse(argc, argv);
  examples::set_threads(config.threads);
  const io::FashionMnist ds = examples::load_data("flax-mnist", config.data_dir, config.train_examples, config.batch_size);
  try {
    return train_and_evaluate(config, ds, start);
  } catch (const Error& e) {
    std::cerr << "flax-mnist: " << e.what() << "\n";
    return 1;
  }
}
