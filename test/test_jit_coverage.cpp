// weft::jit against eager mode on every layer, loss and optimizer, and on the training steps of a
// transformer: each jitted step (value, gradient, batch statistics; an optimizer's updates and
// state) equals eager mode's bit for bit over a few calls with new keys, and a new batch size
// traces again.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "testing.hpp"
#include "weft/jit.hpp"
#include "weft/losses.hpp"
#include "weft/nn/attention.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/recurrent.hpp"
#include "weft/nn/remat.hpp"
#include "weft/nn/scan.hpp"
#include "weft/nn/sequential.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/optim.hpp"
#include "weft/random.hpp"

using namespace weft;
using weft::testing::pattern;

namespace jit_coverage {

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  if (a.dtype() == DType::int32) return a.to_int_vector() == b.to_int_vector();
  const auto x = a.to_vector(), y = b.to_vector();
  for (std::size_t i = 0; i < x.size(); ++i)
    if (std::bit_cast<std::uint32_t>(x[i]) != std::bit_cast<std::uint32_t>(y[i])) return false;
  return true;
}

void check_same(const Variables& actual, const Variables& expected) {
  REQUIRE(actual.paths() == expected.paths());
  for (const auto& [path, t] : expected.leaves()) {
    INFO("at " << path);
    CHECK(same_bits(actual.at(path), t));
  }
}

/// value_and_grad of sum(y * w) for the module's output y (a fixed weight per element, so that
/// every output gets its own gradient), with the batch statistics the call updates.
template <class Module>
struct LossStep {
  Module module;
  std::tuple<Tensor, Variables, Variables> operator()(const Variables& vars, const Tensor& x, Key key) const {
    const auto loss = [&](const Variables& v) {
      auto [y, state] = nn::apply(module, v, nn::Mutable{"batch_stats"}, Rngs{{"dropout", key}}, x);
      return std::pair{sum(y * pattern(y.shape(), 0.5f, 1.5f, 3)), state};
    };
    auto [value, state, grads] = value_and_grad_with_aux(loss)(vars);
    return {value, state, grads};
  }
};

/// The module's jitted step equals its eager step on `x` and on `x2` (another batch size).
template <class Module>
void check_module(const char* name, const Module& module, const Tensor& x, const Tensor& x2) {
  INFO("module " << std::string(name));
  const Variables vars = nn::init(module, Key(0), x);
  const LossStep<Module> step{module};
  const auto jitted = jit(step);
  for (const Tensor& input : {x, x, x2}) {
    for (std::uint32_t i = 0; i < 2; ++i) {
      const Key key = fold_in(Key(11), i);
      const auto [v1, s1, g1] = step(vars, input, key);
      const auto [v2, s2, g2] = jitted(vars, input, key);
      CHECK(same_bits(v2, v1));
      check_same(s2, s1);
      check_same(g2, g1);
    }
  }
  CHECK(jitted.trace_count() == 2);
  CHECK(detail::jit_stats(*jitted.latest_plan()).vjp_steps == 0);  // every gradient recorded as ops
}

struct AttentionBlock {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return s(nn::SelfAttention{.num_heads = 2, .qkv_features = 8, .dropout_rate = 0.2f, .deterministic = false}, x);
  }
};

struct ConvBlock {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const PoolOptions pool{.window = {2, 2}, .strides = {2, 2}};
    Tensor y = relu(s(nn::Conv{.features = 4, .kernel_size = {3, 3}}, x));
    y = max_pool(s(nn::BatchNorm{.use_running_average = false}, y), pool);
    y = avg_pool(s(nn::ConvTranspose{.features = 3, .kernel_size = {2, 2}}, y), {.window = {2, 2}});
    return s(nn::GroupNorm{.num_groups = 1}, y);
  }
};

struct Block {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return x + s(nn::Dense{.features = 6}, gelu(s(nn::LayerNorm{}, x)));
  }
};

struct Norms {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    Tensor y = s(nn::RMSNorm{}, s(nn::DenseGeneral{.features = {2, 3}}, x));
    y = s(nn::Einsum{.shape = {2, 3, 5}, .einsum_str = "bij,ijk->bk"}, y);
    return s(nn::Dropout{.rate = 0.5f, .deterministic = false}, silu(y));
  }
};

struct Embedding {
  Tensor operator()(nn::Scope& s, const Tensor& ids) const {
    return s(nn::Embed{.num_embeddings = 7, .features = 4}, ids);
  }
};

/// A small transformer classifier: embed, a pre-norm self-attention block with dropout and a gelu
/// MLP block, mean over the sequence, classes.
struct Transformer {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    Tensor h = s(nn::Dense{.features = 8}, x);
    h = h + s(nn::SelfAttention{.num_heads = 2, .dropout_rate = 0.1f, .deterministic = false}, s(nn::LayerNorm{}, h));
    h = h + s(nn::Dense{.features = 8}, gelu(s(nn::Dense{.features = 16}, s(nn::LayerNorm{}, h))));
    return s(nn::Dense{.features = 4}, mean(h, Axes(1)));
  }
};

}  // namespace jit_coverage

using namespace jit_coverage;

TEST_CASE("jit on an attention model's training steps (AdamW): eager mode's bits, retraced per batch size") {
  const Transformer model;
  const auto tx = optim::adamw(1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f);
  const auto step = [model, tx](const Variables& p, const Variables& state, const Tensor& x, const Tensor& labels,
                                Key key) {
    const auto loss = [&](const Variables& q) {
      const Tensor logits = nn::apply(model, q, Rngs{{"dropout", key}}, x);
      return mean(losses::softmax_cross_entropy_with_integer_labels(logits, labels));
    };
    auto [value, grads] = value_and_grad(loss)(p);
    auto [updates, next] = tx.update(grads, state, p);
    return std::tuple{optim::apply_updates(p, updates), next, value};
  };
  const auto jitted = jit(step);
  const Tensor x = pattern(Shape{4, 6, 5}), x2 = pattern(Shape{3, 6, 5}, -1.0f, 1.0f, 1);
  const Variables params = nn::init(model, Key(0), x);
  Variables p1 = params, s1 = tx.init(params), p2 = p1, s2 = s1;
  int i = 0;
  for (const Tensor& input : {x, x, x, x2, x2}) {
    const Tensor labels = astype(pattern(Shape{input.shape()[0]}, 0.0f, 3.99f, 5 + i), DType::int32);
    const Key key = fold_in(Key(7), static_cast<std::uint32_t>(i++));
    Tensor v1, v2;
    std::tie(p1, s1, v1) = step(p1, s1, input, labels, key);
    std::tie(p2, s2, v2) = jitted(std::move(p2), std::move(s2), input, labels, key);
    CHECK(same_bits(v2, v1));
    check_same(p2, p1);
    check_same(s2, s1);
  }
  CHECK(jitted.trace_count() == 2);
  // Every gradient is recorded as ops (none replays a recorded graph).
  CHECK(detail::jit_stats(*jitted.latest_plan()).vjp_steps == 0);
}

TEST_CASE("jit on every layer: a training step's value, gradient and batch statistics equal eager mode's") {
  const Tensor seq = pattern(Shape{2, 5, 3}), seq2 = pattern(Shape{3, 5, 3}, -1.0f, 1.0f, 1);
  check_module("Dense/LayerNorm/gelu residual, scanned and rematerialised",
               nn::scan(nn::remat(Block{}), 2), pattern(Shape{4, 6}), pattern(Shape{3, 6}, -1.0f, 1.0f, 2));
  check_module("DenseGeneral/RMSNorm/Einsum/Dropout", Norms{}, pattern(Shape{4, 6}), pattern(Shape{5, 6}));
  check_module("Conv/BatchNorm/max_pool/ConvTranspose/avg_pool/GroupNorm", ConvBlock{}, pattern(Shape{2, 6, 6, 2}),
               pattern(Shape{1, 6, 6, 2}, -1.0f, 1.0f, 4));
  check_module("SelfAttention", AttentionBlock{}, seq, seq2);
  check_module("RNN(LSTMCell)", nn::RNN<nn::LSTMCell>{.cell = {.features = 4}}, seq, seq2);
  check_module("RNN(GRUCell)", nn::RNN<nn::GRUCell>{.cell = {.features = 4}}, seq, seq2);
  check_module("Bidirectional(RNN(OptimizedLSTMCell))",
               nn::Bidirectional<nn::RNN<nn::OptimizedLSTMCell>>{.forward_rnn = {.cell = {.features = 3}},
                                                                 .backward_rnn = {.cell = {.features = 3}}},
               seq, seq2);
}

TEST_CASE("jit on every loss: value and gradient equal eager mode's") {
  const Tensor logits = pattern(Shape{4, 5}, -2.0f, 2.0f), targets = softmax(pattern(Shape{4, 5}, -1.0f, 1.0f, 1));
  const Tensor labels(std::vector<std::int32_t>{0, 4, 2, 1}, Shape{4});
  const Tensor binary = astype(pattern(Shape{4, 5}, 0.0f, 2.0f, 2), DType::int32);
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> losses_of_x{
      {"softmax_cross_entropy", [&](const Tensor& x) { return losses::softmax_cross_entropy(x, targets); }},
      {"softmax_cross_entropy_with_integer_labels",
       [&](const Tensor& x) { return losses::softmax_cross_entropy_with_integer_labels(x, labels); }},
      {"sigmoid_binary_cross_entropy",
       [&](const Tensor& x) { return losses::sigmoid_binary_cross_entropy(x, astype(binary, DType::float32)); }},
      {"l2_loss", [&](const Tensor& x) { return losses::l2_loss(x, targets); }},
      {"squared_error", [&](const Tensor& x) { return losses::squared_error(x); }},
      {"huber_loss", [&](const Tensor& x) { return losses::huber_loss(x, targets, 0.5f); }},
      {"kl_divergence", [&](const Tensor& x) { return losses::kl_divergence(log_softmax(x), targets); }},
      {"cosine_similarity", [&](const Tensor& x) { return losses::cosine_similarity(x, targets, 1e-6f); }},
      {"cosine_distance", [&](const Tensor& x) { return losses::cosine_distance(x, targets); }},
      {"hinge_loss", [&](const Tensor& x) { return losses::hinge_loss(x, targets * 2.0f - 0.3f); }},
      {"smooth_labels", [&](const Tensor& x) { return losses::smooth_labels(softmax(x), 0.1f) * x; }},
      // Both operands depend on x: the gradients of targets and labels too.
      {"softmax_cross_entropy, both operands",
       [&](const Tensor& x) { return losses::softmax_cross_entropy(x, softmax(x * 0.5f)); }},
      {"sigmoid_binary_cross_entropy, both operands",
       [&](const Tensor& x) { return losses::sigmoid_binary_cross_entropy(x, sigmoid(x * 0.5f)); }},
      {"huber_loss, both operands", [&](const Tensor& x) { return losses::huber_loss(x, x * x, 0.5f); }},
      {"kl_divergence, both operands",
       [&](const Tensor& x) { return losses::kl_divergence(log_softmax(x), softmax(x * 0.5f)); }},
      {"cosine_distance, both operands", [&](const Tensor& x) { return losses::cosine_distance(x, x * x); }},
      {"hinge_loss, both operands", [&](const Tensor& x) { return losses::hinge_loss(x, tanh(x)); }},
  };
  for (const auto& [name, loss] : losses_of_x) {
    INFO("loss " << std::string(name));
    const auto vg = [&loss](const Tensor& x) {
      return value_and_grad([&](const Tensor& v) { return sum(loss(v)); })(x);
    };
    const auto jitted = jit(vg);
    for (const Tensor& x : {logits, logits * 0.5f}) {
      const auto a = vg(x);
      const auto b = jitted(x);
      CHECK(same_bits(b.value, a.value));
      CHECK(same_bits(b.grad, a.grad));
    }
    CHECK(jitted.trace_count() == 1);
    CHECK(detail::jit_stats(*jitted.latest_plan()).vjp_steps == 0);  // every gradient recorded as ops
  }
}

TEST_CASE("jit on every optimizer: updates and state over several steps equal eager mode's") {
  const Variables params = Variables::from_leaves({{"params/a/kernel", pattern(Shape{3, 4})},
                                                   {"params/a/bias", pattern(Shape{4}, -0.5f, 0.5f, 1)},
                                                   {"params/b/scale", pattern(Shape{2, 2, 3}, 0.5f, 1.5f, 2)}});
  const optim::Schedule warmup = optim::warmup_cosine_decay_schedule(0.0f, 1e-2f, 2, 10);
  const std::vector<std::pair<const char*, optim::GradientTransformation>> optimizers{
      {"sgd", optim::sgd(1e-2f)},
      {"sgd momentum nesterov", optim::sgd(warmup, 0.9f, true)},
      {"adam", optim::adam(1e-2f)},
      {"adamw", optim::adamw(warmup, 0.9f, 0.999f, 1e-8f, 1e-2f)},
      {"rmsprop", optim::rmsprop(1e-2f)},
      {"adagrad", optim::adagrad(1e-2f)},
      {"lion", optim::lion(1e-3f)},
      {"lamb", optim::lamb(1e-2f)},
      {"adafactor", optim::adafactor({.learning_rate = 1e-2f})},
      {"chain(clip_by_global_norm, adam)", optim::chain(optim::clip_by_global_norm(0.5f), optim::adam(1e-2f))},
      {"chain(clip, scale_by_schedule, add_decayed_weights)",
       optim::chain(optim::clip(0.2f), optim::scale_by_schedule(warmup), optim::add_decayed_weights(1e-3f))},
      {"clip_by_block_rms, scale", optim::chain(optim::clip_by_block_rms(0.3f), optim::scale(-0.1f))},
      {"MultiSteps(adam, 2)", optim::MultiSteps(optim::adam(1e-2f), 2).gradient_transformation()},
      {"inject_hyperparams(adam)",
       optim::inject_hyperparams(
           [](const optim::Hyperparams& h) { return optim::adam(h.find("learning_rate")->second); },
                                 {{"learning_rate", optim::LearningRate(warmup)}})},
  };
  for (const auto& [name, tx] : optimizers) {
    INFO("optimizer " << std::string(name));
    const auto step = [tx](const Variables& p, const Variables& state, const Tensor& scale) {
      // Gradients that depend on the params, so that every step sees new ones.
      const Variables grads = tree_map([&](const Tensor& t) { return (tanh(t) - 0.1f) * scale; }, p);
      auto [updates, next] = tx.update(grads, state, p);
      return std::pair{optim::apply_updates(p, updates), next};
    };
    const auto jitted = jit(step);
    Variables p1 = params, s1 = tx.init(params), p2 = p1, s2 = s1;
    for (int i = 0; i < 4; ++i) {
      const Tensor scale(1.0f + 0.25f * static_cast<float>(i));
      std::tie(p1, s1) = step(p1, s1, scale);
      std::tie(p2, s2) = jitted(p2, s2, scale);
      check_same(p2, p1);
      check_same(s2, s1);
    }
    CHECK(jitted.trace_count() == 1);
  }
}
