// core::dot_product_attention and multi_head_dot_product_attention: hand-computed cases, loops,
// masks, dropout, Flax's parameter tree and initializers, errors and finite differences.
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "core_testing.hpp"
#include "testing.hpp"
#include "weft/core.hpp"
#include "weft/partial.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;
namespace init = weft::core::initializers;
using weft::testing::kQueryFirst;
using weft::testing::same_values;
using weft::testing::lecun_normal_values;
using weft::testing::init_and_check_apply;

// -------------------------------------------------------------------------------------- attention

namespace {

// Attention by loops in double: q (B, Q, H, D), k (B, K, H, D), v (B, K, H, E) -> (B, Q, H, E);
// keep(b, h, i, j) says whether query i may attend to key j (a fully masked row is uniform, as Flax).
template <class Keep>
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, Keep keep) {
  const auto B = q.shape()[0], Q = q.shape()[1], H = q.shape()[2], D = q.shape()[3];
  const auto K = k.shape()[1], E = v.shape()[3];
  const auto qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  std::vector<float> out(static_cast<std::size_t>(B * Q * H * E));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t i = 0; i < Q; ++i) {
        std::vector<double> s(static_cast<std::size_t>(K));
        bool any = false;
        for (std::int64_t j = 0; j < K; ++j) {
          double dot = 0;
          for (std::int64_t d = 0; d < D; ++d)
            dot += static_cast<double>(qv[static_cast<std::size_t>(((b * Q + i) * H + h) * D + d)]) *
                   kv[static_cast<std::size_t>(((b * K + j) * H + h) * D + d)];
          s[static_cast<std::size_t>(j)] = keep(b, h, i, j) ? dot / std::sqrt(static_cast<double>(D)) : -INFINITY;
          any = any || keep(b, h, i, j);
        }
        double mx = -INFINITY, total = 0;
        for (double x : s) mx = std::max(mx, x);
        for (double& x : s) total += (x = any ? std::exp(x - mx) : 1.0);
        for (std::int64_t e = 0; e < E; ++e) {
          double acc = 0;
          for (std::int64_t j = 0; j < K; ++j)
            acc += s[static_cast<std::size_t>(j)] / total * vv[static_cast<std::size_t>(((b * K + j) * H + h) * E + e)];
          out[static_cast<std::size_t>(((b * Q + i) * H + h) * E + e)] = static_cast<float>(acc);
        }
      }
  return Tensor(out, Shape{B, Q, H, E});
}

constexpr auto keep_all = [](std::int64_t, std::int64_t, std::int64_t, std::int64_t) { return true; };

}  // namespace

TEST_CASE("dot_product_attention: a hand-computed case (two positions, one head, depth 2) and a causal mask") {
  const Tensor q({1.0f, 0.0f, 0.0f, 1.0f}, Shape{1, 2, 1, 2});
  const Tensor v({1.0f, 2.0f, 3.0f, 4.0f}, Shape{1, 2, 1, 2});
  const double e = std::exp(1.0 / std::sqrt(2.0));  // scores 1/sqrt(2) on the diagonal, 0 elsewhere
  const double w_diag = e / (e + 1), w_off = 1 / (e + 1);
  const std::vector<float> expected = {
      static_cast<float>(w_diag * 1 + w_off * 3), static_cast<float>(w_diag * 2 + w_off * 4),
      static_cast<float>(w_off * 1 + w_diag * 3), static_cast<float>(w_off * 2 + w_diag * 4)};
  check_close(core::dot_product_attention(q, q, v), expected, Shape{1, 2, 1, 2});
  check_close(
      core::dot_product_attention_weights(q, q),
      {static_cast<float>(w_diag), static_cast<float>(w_off), static_cast<float>(w_off), static_cast<float>(w_diag)},
      Shape{1, 1, 2, 2});
  // Causal: position 0 sees only itself; position 1 is unchanged.
  const Tensor causal = core::make_causal_mask(2);
  check_close(core::dot_product_attention(q, q, v, {.mask = causal}), {1, 2, expected[2], expected[3]},
              Shape{1, 2, 1, 2});
}

TEST_CASE("dot_product_attention: batches and heads agree with loops; weights rows sum to 1") {
  const Tensor q = pattern(Shape{2, 3, 4, 5}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 6, 4, 5}, -1.0f, 1.0f, 2);
  const Tensor v = pattern(Shape{2, 6, 4, 3}, -1.0f, 1.0f, 3);
  check_close(core::dot_product_attention(q, k, v), attention_reference(q, k, v, keep_all), 1e-5f, 1e-4f);
  const Tensor w = core::dot_product_attention_weights(q, k);
  REQUIRE(w.shape() == Shape{2, 4, 3, 6});
  check_close(sum(w, -1), std::vector<float>(2 * 4 * 3, 1.0f), Shape{2, 4, 3}, 1e-6f, 0.0f);
  // One head, one query position and no batch axes take the copy-free paths.
  const Tensor q1 = pattern(Shape{1, 2, 5}), k1 = pattern(Shape{4, 2, 5}, -1.0f, 1.0f, 1), v1 = pattern(Shape{4, 2, 3});
  check_close(core::dot_product_attention(q1, k1, v1),
              reshape(attention_reference(reshape(q1, Shape{1, 1, 2, 5}), reshape(k1, Shape{1, 4, 2, 5}),
                                          reshape(v1, Shape{1, 4, 2, 3}), keep_all),
                      Shape{1, 2, 3}),
              1e-5f, 1e-4f);
}

TEST_CASE("dot_product_attention: masks broadcast over batch and heads; masked scores get no weight") {
  const Tensor q = pattern(Shape{2, 3, 2, 4}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 4, 2, 4}, -1.0f, 1.0f, 2);
  const Tensor v = pattern(Shape{2, 4, 2, 3}, -1.0f, 1.0f, 3);
  // Padding: batch 0 has 3 real query tokens and 2 real keys, batch 1 has 2 and 4.
  const Tensor qm({1, 1, 1, 1, 1, 0}, Shape{2, 3}), km({1, 1, 0, 0, 1, 1, 1, 1}, Shape{2, 4});
  const Tensor mask = core::make_attention_mask(qm, km);
  REQUIRE(mask.shape() == Shape{2, 1, 3, 4});
  CHECK(mask.to_int_vector() == std::vector<std::int32_t>{1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0,  //
                                                          1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0});
  const auto qmv = qm.to_int_vector(), kmv = km.to_int_vector();
  auto keep = [&](std::int64_t b, std::int64_t, std::int64_t i, std::int64_t j) {
    return qmv[static_cast<std::size_t>(b * 3 + i)] && kmv[static_cast<std::size_t>(b * 4 + j)];
  };
  check_close(core::dot_product_attention(q, k, v, {.mask = mask}), attention_reference(q, k, v, keep), 1e-5f, 1e-4f);
  const Tensor w = core::dot_product_attention_weights(q, k, {.mask = mask});
  const auto wv = w.to_vector();
  CHECK(wv[2] == 0.0f);  // batch 0, head 0, query 0, key 2: padded
  CHECK(wv[static_cast<std::size_t>(((1 * 2 + 0) * 3 + 2) * 4)] == doctest::Approx(0.25));  // fully masked row: uniform
  // The causal mask (1, q, k) broadcasts over batch and heads.
  const Tensor causal = core::make_causal_mask(3);
  CHECK(causal.to_int_vector() == std::vector<std::int32_t>{1, 0, 0, 1, 1, 0, 1, 1, 1});
  const Tensor k3 = pattern(Shape{2, 3, 2, 4}), v3 = pattern(Shape{2, 3, 2, 3});
  check_close(core::dot_product_attention(q, k3, v3, {.mask = causal}),
              attention_reference(q, k3, v3, [](auto, auto, auto i, auto j) { return j <= i; }), 1e-5f, 1e-4f);
  // A bias adds to the scores: a large negative bias acts as a mask.
  const Tensor bias = astype(causal, DType::float32) * 1e9f - 1e9f;
  check_close(core::dot_product_attention(q, k3, v3, {.bias = bias}),
              core::dot_product_attention(q, k3, v3, {.mask = causal}), 1e-6f, 1e-5f);
}

TEST_CASE("dot_product_attention: dropout multiplies the weights by bernoulli(rng, 1 - rate) / (1 - rate)") {
  const Tensor q = pattern(Shape{2, 3, 2, 4}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 5, 2, 4}, -1.0f, 1.0f, 2);
  const Tensor plain = core::dot_product_attention_weights(q, k);
  const Key key(5);
  // broadcast_dropout: one (q_len, kv_len) mask for every batch element and head.
  const Tensor shared =
      core::dot_product_attention_weights(q, k, {.dropout_rate = 0.25f, .dropout_rng = key, .deterministic = false});
  check_close(shared, plain * (astype(bernoulli(key, 0.75f, Shape{1, 1, 3, 5}), DType::float32) / 0.75f), 0.0f, 0.0f);
  const Tensor own = core::dot_product_attention_weights(
      q, k, {.dropout_rate = 0.25f, .broadcast_dropout = false, .dropout_rng = key, .deterministic = false});
  check_close(own, plain * (astype(bernoulli(key, 0.75f, Shape{2, 2, 3, 5}), DType::float32) / 0.75f), 0.0f, 0.0f);
  // deterministic: no dropout, no rng needed.
  CHECK(same_values(core::dot_product_attention_weights(q, k, {.dropout_rate = 0.25f, .deterministic = true}), plain));
  // rate 1 drops everything (not 0 / 0).
  check_close(
      core::dot_product_attention_weights(q, k, {.dropout_rate = 1.0f, .dropout_rng = key, .deterministic = false}),
      zeros(plain.shape()), 0.0f, 0.0f);
}

TEST_CASE("dot_product_attention: bad inputs are errors that name the shapes and the fix") {
  const Tensor q = pattern(Shape{1, 3, 2, 4}), k = pattern(Shape{1, 5, 2, 4}), v = pattern(Shape{1, 5, 2, 3});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, pattern(Shape{1, 5, 3, 4}), v);
      },
      {"heads", "(1, 3, 2, 4)", "(1, 5, 3, 4)"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, pattern(Shape{1, 5, 2, 3}), v);
      },
      {"depth"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, k, pattern(Shape{1, 4, 2, 3}));
      },
      {"length"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, pattern(Shape{2, 5, 2, 4}), v);
      },
      {"batch"});
  check_throws_with<ShapeError>([&] { (void)core::dot_product_attention(pattern(Shape{2, 4}), k, v); }, {"rank"});
  check_throws_with<DTypeError>(
      [&] {
        (void)core::dot_product_attention(q, k, v, {.mask = ones(Shape{3, 5})});
      },
      {"mask", "int32"});
  check_throws_with<ShapeError>(
      [&] { (void)core::dot_product_attention(q, k, v, {.mask = core::make_causal_mask(3)}); },
      {"mask", "(1, 3, 3)", "(1, 2, 3, 5)"});
  check_throws_with<ValueError>([&] { (void)core::dot_product_attention(q, k, v, {.dropout_rate = 0.1f}); },
                                {"`deterministic`"});
  check_throws_with<ValueError>(
      [&] { (void)core::dot_product_attention(q, k, v, {.dropout_rate = 0.1f, .deterministic = false}); },
      {"dropout_rng"});
  check_throws_with<ValueError>(
      [&] { (void)core::dot_product_attention(q, k, v, {.dropout_rate = 2.0f, .deterministic = true}); },
      {"dropout_rate", "[0, 1]"});
}

TEST_CASE("dot_product_attention: gradients of query, key and value match finite differences") {
  const Tensor q = pattern(Shape{2, 3, 2, 2}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 4, 2, 2}, -1.0f, 1.0f, 2);
  const Tensor v = pattern(Shape{2, 4, 2, 3}, -1.0f, 1.0f, 3);
  const Tensor mask({1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1}, Shape{1, 1, 3, 4});
  const Tensor w = pattern(Shape{2, 3, 2, 3}, -1.0f, 1.0f, 4);
  const core::DotProductAttentionOptions o{.mask = mask};
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(t, k, v, o) * w); }, q);
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(q, t, v, o) * w); }, k);
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(q, k, t, o) * w); }, v);
  // With dropout under a fixed key the mask is a constant.
  const core::DotProductAttentionOptions d{.dropout_rate = 0.3f, .dropout_rng = Key(1), .deterministic = false};
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(t, k, v, d) * w); }, q);
}

TEST_CASE("multi_head_dot_product_attention: parameter tree, Flax's initializers and the wiring") {
  const Tensor x = pattern(Shape{2, 5, 6});
  const core::MultiHeadDotProductAttentionOptions o{
      .num_heads = 2, .qkv_features = 8, .out_features = 7, .bias_init = init::normal(0.1f)};
  const auto layer = partial(core::multi_head_dot_product_attention, o);
  auto [y, variables] = init_and_check_apply(layer, Key(0), x);
  REQUIRE(y.shape() == Shape{2, 5, 7});
  CHECK(variables.paths() == std::vector<std::string>{"params/key/bias", "params/key/kernel", "params/out/bias",
                                                      "params/out/kernel", "params/query/bias", "params/query/kernel",
                                                      "params/value/bias", "params/value/kernel"});
  for (const char* p : {"query", "key", "value"}) {
    CHECK(variables.at(std::string("params/") + p + "/kernel").shape() == Shape{6, 2, 4});
    CHECK(variables.at(std::string("params/") + p + "/bias").shape() == Shape{2, 4});
  }
  CHECK(variables.at("params/out/kernel").shape() == Shape{2, 4, 7});
  CHECK(variables.at("params/out/bias").shape() == Shape{7});
  // The query kernel: lecun_normal on the flattened (6, 8) under the child's key.
  check_close(variables.at("params/query/kernel"),
              reshape(lecun_normal_values(fold_in(Key(0), kQueryFirst), Shape{6, 8}, 6.0), Shape{6, 2, 4}), 0.0f, 0.0f);
  // The output is out(attention(query(x), key(x), value(x))).
  auto project = [&](const std::string& name, const Tensor& in) {
    const Tensor kernel = reshape(variables.at("params/" + name + "/kernel"), Shape{in.shape()[2], 8});
    return reshape(matmul(in, kernel) + reshape(variables.at("params/" + name + "/bias"), Shape{8}),
                   Shape{2, in.shape()[1], 2, 4});
  };
  const Tensor a = core::dot_product_attention(project("query", x), project("key", x), project("value", x));
  const Tensor expected = matmul(reshape(a, Shape{2, 5, 8}), reshape(variables.at("params/out/kernel"), Shape{8, 7})) +
                          variables.at("params/out/bias");
  check_close(y, expected, 1e-5f, 1e-4f);
  // Self-attention is cross-attention of the inputs with themselves.
  CHECK(same_values(core::apply(layer)(variables, x, x), y));
}

TEST_CASE("multi_head_dot_product_attention: cross-attention, defaults and the causal mask") {
  const Tensor x = pattern(Shape{2, 5, 6});
  const Tensor memory = pattern(Shape{2, 3, 10}, -1.0f, 1.0f, 4);
  // num_heads only: qkv_features and out_features default to inputs_q's last extent.
  const auto layer = partial(core::multi_head_dot_product_attention, 3);
  auto [y, variables] = init_and_check_apply(layer, Key(1), x, memory);
  CHECK(y.shape() == Shape{2, 5, 6});
  CHECK(variables.at("params/query/kernel").shape() == Shape{6, 3, 2});
  CHECK(variables.at("params/key/kernel").shape() == Shape{10, 3, 2});
  CHECK(variables.at("params/out/kernel").shape() == Shape{3, 2, 6});
  // Causal self-attention: position 0 does not see later positions.
  auto [yc, vc] = core::init(layer)(Key(1), x, Tensor{}, core::make_causal_mask(5));
  std::vector<float> changed = x.to_vector();
  for (std::size_t i = 6; i < 30; ++i) changed[i] += 1.0f;  // batch 0, positions 1..4
  const Tensor y2 = core::apply(layer)(vc, Tensor(changed, x.shape()), Tensor{}, core::make_causal_mask(5));
  const auto a = yc.to_vector(), b = y2.to_vector();
  for (std::size_t i = 0; i < 6; ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-6));
  CHECK(a[6] != b[6]);
}

TEST_CASE("multi_head_dot_product_attention: errors name the numbers and the option") {
  const Tensor x = pattern(Shape{2, 5, 6});
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::multi_head_dot_product_attention, 4))(Key(0), x); },
      {"Memory dimension (6) must be divisible by number of heads (4)", "qkv_features"});
  const core::MultiHeadDotProductAttentionOptions with_dropout{.num_heads = 2, .dropout_rate = 0.1f};
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::multi_head_dot_product_attention, with_dropout))(Key(0), x); },
      {"`deterministic`", "dropout_rate"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::init(partial(core::multi_head_dot_product_attention, 2))(Key(0), x, pattern(Shape{3, 5, 6}));
      },
      {"inputs_kv", "(3, 5, 6)"});
}

TEST_CASE("multi_head_dot_product_attention with dropout (Flax test_multihead_self_attention_explicit_dropout)") {
  // Two layers with identical parameters (ones / zeros) in one parent.
  auto two = [](core::Scope& s, const Tensor& x, std::optional<Key> rng) {
    const core::MultiHeadDotProductAttentionOptions o{.num_heads = 2,
                                                      .qkv_features = 8,
                                                      .dropout_rate = 0.5f,
                                                      .deterministic = false,
                                                      .kernel_init = init::ones(),
                                                      .bias_init = init::zeros()};
    const Tensor a = s.child("a", partial(core::multi_head_dot_product_attention, o))(x, Tensor{}, Tensor{}, rng);
    const Tensor b = s.child("b", partial(core::multi_head_dot_product_attention, o))(x, Tensor{}, Tensor{}, rng);
    return std::pair{a, b};
  };
  const auto keys = split(Key(0), 4);
  const core::Rngs rngs{{"params", keys[0]}, {"dropout", keys[1]}};
  const Tensor x = pattern(Shape{4, 3, 5});
  const std::optional<Key> none;
  const Variables variables = core::init(two)(rngs, x, none).second;
  const auto [a, b] = core::apply(two)(variables, rngs, x, none);
  CHECK_FALSE(same_values(a, b));  // different paths, different dropout keys
  const auto [a2, b2] = core::apply(two)(variables, rngs, x, none);
  CHECK(same_values(a, a2));
  CHECK(same_values(b, b2));
  const auto [a3, b3] = core::apply(two)(variables, core::Rngs{{"params", keys[0]}, {"dropout", keys[2]}}, x, none);
  CHECK_FALSE(same_values(a, a3));
  // An explicit dropout_rng overrides the stream (both layers then drop alike) and needs no rngs.
  const auto [a4, b4] = core::apply(two)(variables, rngs, x, std::optional<Key>(keys[3]));
  CHECK(same_values(a4, b4));
  const auto [a5, b5] = core::apply(two)(variables, x, std::optional<Key>(keys[3]));
  CHECK(same_values(a4, a5));
  // deterministic: no dropout, whatever the rngs, and the same as dropout_rate 0.
  auto eval = [](core::Scope& s, const Tensor& x, float rate) {
    const core::MultiHeadDotProductAttentionOptions o{
        .num_heads = 2, .qkv_features = 8, .dropout_rate = rate, .deterministic = true, .kernel_init = init::ones()};
    return s.child("a", partial(core::multi_head_dot_product_attention, o))(x);
  };
  const Tensor e1 = core::apply(eval)(variables, rngs, x, 0.5f);
  CHECK(same_values(e1, core::apply(eval)(variables, core::Rngs{{"dropout", keys[2]}}, x, 0.5f)));
  CHECK(same_values(e1, core::apply(eval)(variables, x, 0.0f)));
}
