// One model, one set of Variables, used from several std::threads at once: nn::apply (plain and
// with mutable batch statistics and dropout) and value_and_grad_with_aux, as a server or a
// data-parallel loop would. Every thread's results must equal the single-threaded ones, bit for
// bit. CI also runs this executable under ThreadSanitizer (with OpenMP at one thread: Debian's
// libgomp is not instrumented), which reports any data race in the shared state.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "weft/autodiff.hpp"
#include "weft/losses.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/weft.hpp"

using namespace weft;

namespace {

/// Conv, BatchNorm, ReLU, max-pooling, Dropout and Dense: every kind of variable and random stream.
struct SmallNet {
  Tensor operator()(nn::Scope& s, const Tensor& images, bool train) const {
    Tensor x = s(nn::Conv{.features = 4, .kernel_size = {3, 3}, .use_bias = false}, images);
    x = max_pool(relu(s(nn::BatchNorm{.use_running_average = !train}, x)), {.window = {2, 2}, .strides = {2, 2}});
    x = s(nn::Dropout{.rate = 0.25f, .deterministic = !train}, reshape(x, {x.shape()[0], -1}));
    return s(nn::Dense{.features = 3}, x);
  }
};

struct Results {
  std::vector<float> eval, train, batch_mean, loss, kernel_grad;
};

/// Everything one thread computes from the shared model and variables, with keys from `seed`.
Results run(const SmallNet& model, const Variables& vars, const Tensor& images, const Tensor& labels, int seed) {
  Results r;
  r.eval = nn::apply(model, vars, images, false).to_vector();
  auto [logits, state] =
      nn::apply(model, vars, nn::Mutable{"batch_stats"}, Rngs{{"dropout", Key(static_cast<std::uint64_t>(seed))}}, images, true);
  r.train = logits.to_vector();
  r.batch_mean = state.at("batch_stats/BatchNorm_0/mean").to_vector();
  const auto loss_fn = [&](const Variables& v, Key key) {
    auto [out, new_state] = nn::apply(model, v, nn::Mutable{"batch_stats"}, Rngs{{"dropout", key}}, images, true);
    return std::pair{mean(losses::softmax_cross_entropy(out, labels)), new_state};
  };
  auto [loss, aux, grads] = value_and_grad_with_aux(loss_fn)(vars, Key(static_cast<std::uint64_t>(seed) + 100));
  r.loss = loss.to_vector();
  r.kernel_grad = grads.at("params/Conv_0/kernel").to_vector();
  (void)aux;
  return r;
}

}  // namespace

TEST_CASE("nn::apply and value_and_grad on shared Variables from several threads match one thread") {
  const SmallNet model;
  const Tensor images = reshape(tanh(arange(6 * 8 * 8) * 0.37f - 50.0f), {6, 8, 8, 1});
  const Tensor labels(std::vector<std::int32_t>{0, 1, 2, 0, 1, 2}, Shape{6});
  const Variables vars = nn::init(model, Key(0), images, false);

  constexpr int kThreads = 4, kRounds = 3;
  std::vector<Results> expected;
  for (int t = 0; t < kThreads; ++t) expected.push_back(run(model, vars, images, labels, t));
  CHECK(expected[0].train != expected[1].train);  // the dropout keys differ, so do the outputs

  std::vector<std::vector<Results>> got(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int round = 0; round < kRounds; ++round) got[static_cast<std::size_t>(t)].push_back(run(model, vars, images, labels, t));
      });
  }
  for (int t = 0; t < kThreads; ++t) {
    for (const Results& r : got[static_cast<std::size_t>(t)]) {
      INFO("thread " << t);
      const Results& e = expected[static_cast<std::size_t>(t)];
      CHECK(r.eval == e.eval);
      CHECK(r.train == e.train);
      CHECK(r.batch_mean == e.batch_mean);
      CHECK(r.loss == e.loss);
      CHECK(r.kernel_grad == e.kernel_grad);
    }
  }
}
