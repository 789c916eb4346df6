// core::dropout: JAX's masks element for element, Flax's key derivation, rate limits and gradients.
#include <cmath>
#include <limits>
#include <vector>

#include "core_testing.hpp"
#include "testing.hpp"
#include "weft/core.hpp"
#include "weft/partial.hpp"

using namespace weft;
using namespace weft::literals;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;
using weft::testing::kDropout0First;
using weft::testing::same_values;
using weft::testing::drop;

// ---------------------------------------------------------------------------------------- dropout


TEST_CASE("dropout: rate 0 and deterministic are the identity, whatever the key") {
  const Tensor x = pattern(Shape{4, 5});
  CHECK(same_values(drop(0.0f, x, Key(0)), x));
  for (std::uint64_t seed : {0u, 1u, 2u}) {
    auto f = [&](core::Scope& s, const Tensor& t) {
      return core::dropout(core::DropoutOptions{.rate = 0.5f, .deterministic = true}, s, t, Key(seed));
    };
    CHECK(same_values(core::apply(f)(Variables{}, x), x));
  }
  // Deterministic needs no rng at all.
  const auto eval = partial(core::dropout, "rate"_kw = 0.5f, "deterministic"_kw = true);
  CHECK(same_values(core::apply(eval)(Variables{}, x), x));
}

TEST_CASE("dropout: rate 1 gives zeros, with a zero gradient and no NaN (Flax test_dropout_rate_limits)") {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x({1.0f, -2.0f, inf, 3.0f}, Shape{4});
  check_close(drop(1.0f, x, Key(0)), {0, 0, 0, 0}, Shape{4}, 0.0f, 0.0f);  // zeros, also where x is infinite
  const Tensor g = grad([](const Tensor& t) { return sum(drop(1.0f, t, Key(0))); })(pattern(Shape{4}));
  check_close(g, {0, 0, 0, 0}, Shape{4}, 0.0f, 0.0f);
}

TEST_CASE("dropout: kept fraction within 4 sigma of 1 - rate, kept values scaled by 1 / (1 - rate)") {
  const Tensor x = ones(Shape{100, 100});
  for (int tenth = 1; tenth <= 9; ++tenth) {
    const float rate = 0.1f * static_cast<float>(tenth);
    CAPTURE(rate);
    const float keep = 1.0f - rate;
    std::int64_t kept = 0;
    const int trials = 10;
    for (const Key& key : split(Key(0), trials))
      for (float v : drop(rate, x, key).to_vector()) {
        if (v != 0.0f) {
          ++kept;
          CHECK(v == 1.0f / keep);
        }
      }
    const double n = 100.0 * 100.0 * trials;
    const double delta = 4.0 * std::sqrt(rate * keep) / std::sqrt(n);
    const double frac = static_cast<double>(kept) / n;
    CHECK(frac > keep - delta);
    CHECK(frac < keep + delta);
  }
}

TEST_CASE("dropout: the mask is jax.random.bernoulli(key, 1 - rate, shape), element for element") {
  const Tensor x = pattern(Shape{7, 33}, 0.5f, 2.0f);  // no zeros
  for (const float rate : {0.1f, 0.5f, 0.8f}) {
    const Key key(42);
    const auto keep_mask = bernoulli(key, 1.0f - rate, x.shape()).to_int_vector();
    const auto y = drop(rate, x, key).to_vector(), xv = x.to_vector();
    for (std::size_t i = 0; i < y.size(); ++i) {
      CHECK((y[i] != 0.0f) == (keep_mask[i] != 0));
      if (keep_mask[i]) CHECK(y[i] == xv[i] / (1.0f - rate));
    }
  }
  // Same key, same mask; different keys, different masks.
  CHECK(same_values(drop(0.5f, x, Key(1)), drop(0.5f, x, Key(1))));
  CHECK_FALSE(same_values(drop(0.5f, x, Key(1)), drop(0.5f, x, Key(2))));
}

TEST_CASE("dropout: the key is make_rng(\"dropout\") of the layer's scope, Flax's derivation") {
  const Tensor x = pattern(Shape{6, 10}, 0.5f, 2.0f);
  auto model = [](core::Scope& s, const Tensor& t) {
    return s.child("Dropout_0", partial(core::dropout, "rate"_kw = 0.5f, "deterministic"_kw = false))(t);
  };
  const Tensor y = core::apply(model)(Variables{}, core::Rngs{{"dropout", Key(9)}}, x);
  CHECK(same_values(y, drop(0.5f, x, fold_in(Key(9), kDropout0First))));
  // Different dropout streams give different masks; init with only a params key falls back to it.
  CHECK_FALSE(same_values(y, core::apply(model)(Variables{}, core::Rngs{{"dropout", Key(10)}}, x)));
  CHECK(same_values(core::init(model)(Key(9), x).first, y));
  // No rng at all: the error names the scope and the stream.
  check_throws_with<Error>([&] { (void)core::apply(model)(Variables{}, x); }, {"Dropout_0 needs PRNG for \"dropout\""});
}

TEST_CASE("dropout: broadcast_dims share one mask value along those axes (Flax test_dropout_broadcast)") {
  const Tensor x = ones(Shape{4, 5, 6});
  for (const std::vector<int>& dims : std::vector<std::vector<int>>{{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {-1}}) {
    CAPTURE(dims.size());
    const Key key(3);
    const Tensor y = drop(0.5f, x, key, dims);
    std::vector<std::int64_t> mask_dims = {4, 5, 6};
    for (int d : dims) mask_dims[static_cast<std::size_t>(d < 0 ? d + 3 : d)] = 1;
    // Each element equals the mask value of its broadcast position: slices all kept or all dropped.
    const Tensor expected =
        astype(broadcast_to(bernoulli(key, 0.5f, Shape(mask_dims)), x.shape()), DType::float32) * 2.0f;
    check_close(y, expected, 0.0f, 0.0f);
  }
}

TEST_CASE("dropout: bad rates and non-float inputs are errors") {
  for (const float rate : {-0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN()})
    check_throws_with<ValueError>([&] { (void)drop(rate, ones(Shape{2}), Key(0)); },
                                  {"core::dropout", "rate", "[0, 1]"});
  CHECK_THROWS_AS((void)drop(0.5f, Tensor({1, 2}, Shape{2}), Key(0)), DTypeError);
}

TEST_CASE("dropout: gradients with a fixed key match finite differences") {
  const Tensor x = pattern(Shape{5, 6});
  const Tensor w = pattern(Shape{5, 6}, -1.0f, 1.0f, 3);
  check_gradient([&](const Tensor& t) { return sum(drop(0.3f, t, Key(7)) * w); }, x);
  check_gradient([&](const Tensor& t) { return sum(drop(0.3f, t, Key(7), {0}) * w); }, x);
}
