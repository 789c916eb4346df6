#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "testing.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;

TEST_CASE("broadcasting arithmetic follows NumPy") {
  const Tensor a({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, Shape{2, 3});
  const Tensor row({10.f, 20.f, 30.f}, Shape{3});
  const Tensor col({100.f, 200.f}, Shape{2, 1});
  check_close(a + row, {11, 22, 33, 14, 25, 36}, Shape{2, 3});
  check_close(a + col, {101, 102, 103, 204, 205, 206}, Shape{2, 3});
  check_close(col + row, {110, 120, 130, 210, 220, 230}, Shape{2, 3});
  check_close(a - row, {-9, -18, -27, -6, -15, -24}, Shape{2, 3});
  check_close(a * col, {100, 200, 300, 800, 1000, 1200}, Shape{2, 3});
  check_close(row / a, {10, 10, 10, 2.5f, 4, 5}, Shape{2, 3});
  check_close(-a, {-1, -2, -3, -4, -5, -6}, Shape{2, 3});
  check_close(2.0f * a - 1.0f, {1, 3, 5, 7, 9, 11}, Shape{2, 3});
  check_close(1.0f / Tensor({2.f, 4.f}, Shape{2}), {0.5f, 0.25f}, Shape{2});
  // (2,1,3) with (4,1) -> (2,4,3)
  const Tensor x = arange(6);
  const Tensor y = arange(4);
  const Tensor z = reshape(x, Shape{2, 1, 3}) + reshape(y, Shape{4, 1});
  CHECK(z.shape() == Shape{2, 4, 3});
  std::vector<float> expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) expected.push_back(static_cast<float>(i * 3 + k + j));
  check_close(z, expected, Shape{2, 4, 3});
}

TEST_CASE("broadcast errors name the op and both shapes") {
  const Tensor a = ones(Shape{2, 3});
  const Tensor b = ones(Shape{4});
  check_throws_with<ShapeError>([&] { (void)(a + b); }, {"add", "(2, 3)", "(4,)"});
  check_throws_with<ShapeError>([&] { (void)(a * ones(Shape{3, 3})); }, {"multiply", "(2, 3)", "(3, 3)"});
  check_throws_with<DTypeError>([&] { (void)(a + arange(3, DType::int32)); }, {"add", "float32", "int32"});
  check_throws_with<DTypeError>([&] { (void)(arange(3, DType::int32) / arange(3, DType::int32)); }, {"divide"});
}

TEST_CASE("int32 arithmetic and comparisons") {
  const Tensor a(std::vector<std::int32_t>{1, 2, 3}, Shape{3});
  const Tensor b(std::vector<std::int32_t>{3, 2, 1}, Shape{3});
  CHECK((a + b).to_int_vector() == std::vector<std::int32_t>{4, 4, 4});
  CHECK((a * b).to_int_vector() == std::vector<std::int32_t>{3, 4, 3});
  CHECK((a == b).to_int_vector() == std::vector<std::int32_t>{0, 1, 0});
  CHECK((a < b).to_int_vector() == std::vector<std::int32_t>{1, 0, 0});
  const Tensor f({-1.f, 0.f, 2.f}, Shape{3});
  CHECK((f > 0.0f).to_int_vector() == std::vector<std::int32_t>{0, 0, 1});
  CHECK((f >= 0.0f).to_int_vector() == std::vector<std::int32_t>{0, 1, 1});
  CHECK((f <= 0.0f).to_int_vector() == std::vector<std::int32_t>{1, 1, 0});
  CHECK((f != f).to_int_vector() == std::vector<std::int32_t>{0, 0, 0});
}

TEST_CASE("unary functions match closed forms") {
  const Tensor x({-2.f, -0.5f, 0.f, 0.5f, 2.f}, Shape{5});
  std::vector<float> e_exp, e_tanh, e_sig, e_relu, e_gelu_exact, e_gelu_tanh, e_silu;
  for (float v : x.to_vector()) {
    e_exp.push_back(std::exp(v));
    e_tanh.push_back(std::tanh(v));
    e_sig.push_back(1.0f / (1.0f + std::exp(-v)));
    e_relu.push_back(v > 0 ? v : 0);
    e_gelu_exact.push_back(0.5f * v * (1.0f + std::erf(v / std::sqrt(2.0f))));
    e_gelu_tanh.push_back(0.5f * v * (1.0f + std::tanh(std::sqrt(2.0f / 3.14159265f) * (v + 0.044715f * v * v * v))));
    e_silu.push_back(v / (1.0f + std::exp(-v)));
  }
  check_close(exp(x), e_exp, Shape{5});
  check_close(tanh(x), e_tanh, Shape{5});
  check_close(sigmoid(x), e_sig, Shape{5});
  check_close(relu(x), e_relu, Shape{5});
  check_close(gelu(x, false), e_gelu_exact, Shape{5});
  check_close(gelu(x), e_gelu_tanh, Shape{5});
  check_close(silu(x), e_silu, Shape{5});
  // Known values: gelu(1) exact = 0.8413447, tanh form = 0.8411920.
  check_close(gelu(Tensor(1.0f), false), {0.8413447f}, Shape{}, 1e-6f);
  check_close(gelu(Tensor(1.0f), true), {0.8411920f}, Shape{}, 1e-6f);
  const Tensor p({0.25f, 1.f, 4.f}, Shape{3});
  check_close(log(p), {std::log(0.25f), 0.f, std::log(4.f)}, Shape{3});
  check_close(sqrt(p), {0.5f, 1.f, 2.f}, Shape{3});
  check_close(rsqrt(p), {2.f, 1.f, 0.5f}, Shape{3});
  check_close(square(x), {4, 0.25f, 0, 0.25f, 4}, Shape{5});
  check_close(abs(x), {2, 0.5f, 0, 0.5f, 2}, Shape{5});
  check_close(pow(p, 1.5f), {0.125f, 1.f, 8.f}, Shape{3});
  check_close(clip(x, -1.f, 1.f), {-1, -0.5f, 0, 0.5f, 1}, Shape{5});
  check_close(maximum(x, zeros(Shape{1})), {0, 0, 0, 0.5f, 2}, Shape{5});
  check_close(minimum(x, zeros(Shape{1})), {-2, -0.5f, 0, 0, 0}, Shape{5});
  CHECK_THROWS_AS((void)clip(x, 1.f, -1.f), ValueError);
  CHECK_THROWS_AS((void)exp(arange(3, DType::int32)), DTypeError);
}

TEST_CASE("where selects with a broadcast int32 mask") {
  const Tensor x({-1.f, 2.f, -3.f, 4.f}, Shape{2, 2});
  check_close(where(x > 0.0f, x, zeros(Shape{})), {0, 2, 0, 4}, Shape{2, 2});
  const Tensor c(std::vector<std::int32_t>{1, 0}, Shape{2});
  check_close(where(c, x, full(Shape{2, 1}, 9.f)), {-1, 9, -3, 9}, Shape{2, 2});
  check_throws_with<DTypeError>([&] { (void)where(x, x, x); }, {"where", "int32 mask"});
}

TEST_CASE("astype converts between dtypes") {
  CHECK(astype(Tensor({1.7f, -1.7f}, Shape{2}), DType::int32).to_int_vector() == std::vector<std::int32_t>{1, -1});
  check_close(astype(arange(3, DType::int32), DType::float32), {0, 1, 2}, Shape{3});
}

TEST_CASE("astype to int32 saturates as XLA's conversion: NaN to 0, out of range to the nearest limit") {
  constexpr std::int32_t kMin = std::numeric_limits<std::int32_t>::min();
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x({std::nanf(""), -std::nanf(""), inf, -inf, 3e9f, -3e9f, 2147483520.0f, 2147483648.0f,
                  -2147483648.0f, -2147483904.0f, 1.9f, -1.9f, -0.5f, 1e38f},
                 Shape{14});
  // 2147483520 is the largest float32 below 2^31; -2^31 is exact; -2147483904 is the next below it.
  CHECK(astype(x, DType::int32).to_int_vector() ==
        std::vector<std::int32_t>{0, 0, kMax, kMin, kMax, kMin, 2147483520, kMax, kMin, kMin, 1, -1, 0, kMax});
}

TEST_CASE("int32 + - * and negation wrap modulo 2^32 (two's complement), as JAX's int32") {
  constexpr std::int32_t kMin = std::numeric_limits<std::int32_t>::min();
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  const Tensor a(std::vector<std::int32_t>{kMax, kMin, 65536, -1, 46341, 7}, Shape{6});
  const Tensor b(std::vector<std::int32_t>{1, -1, 65536, kMin, 46341, -3}, Shape{6});
  // Expected values: the exact results reduced modulo 2^32 into [-2^31, 2^31).
  const auto wrap = [](std::int64_t v) {
    const std::int64_t m = ((v % (1LL << 32)) + (1LL << 32)) % (1LL << 32);
    return static_cast<std::int32_t>(m >= (1LL << 31) ? m - (1LL << 32) : m);
  };
  const auto av = a.to_int_vector(), bv = b.to_int_vector();
  std::vector<std::int32_t> sum_, diff, prod, neg;
  for (std::size_t i = 0; i < av.size(); ++i) {
    sum_.push_back(wrap(std::int64_t{av[i]} + bv[i]));
    diff.push_back(wrap(std::int64_t{av[i]} - bv[i]));
    prod.push_back(wrap(std::int64_t{av[i]} * bv[i]));
    neg.push_back(wrap(-std::int64_t{av[i]}));
  }
  CHECK(sum_ == std::vector<std::int32_t>{kMin, kMax, 131072, kMax, 92682, 4});
  CHECK((a + b).to_int_vector() == sum_);
  CHECK((a - b).to_int_vector() == diff);
  CHECK((a * b).to_int_vector() == prod);
  CHECK(prod[2] == 0);  // 2^16 * 2^16 = 2^32
  CHECK((-a).to_int_vector() == neg);
  CHECK(neg[1] == kMin);  // -INT32_MIN wraps to itself
}

TEST_CASE("gradients of elementwise ops match finite differences, with broadcasting") {
  const Tensor x = pattern(Shape{2, 3}, -1.5f, 1.5f);
  const Tensor pos = pattern(Shape{2, 3}, 0.5f, 2.0f, 1);
  const Tensor row = pattern(Shape{3}, -1.0f, 1.0f, 2);
  const Tensor col = pattern(Shape{2, 1}, 0.5f, 1.5f, 3);
  auto wsum = [](const Tensor& t) { return sum(t * pattern(t.shape(), -1.0f, 1.0f, 9)); };  // a generic linear read-out
  check_gradient([&](const Tensor& t) { return wsum(t + row); }, x);
  check_gradient([&](const Tensor& t) { return wsum(x + t); }, row);
  check_gradient([&](const Tensor& t) { return wsum(x - t); }, col);
  check_gradient([&](const Tensor& t) { return wsum(t * col); }, x);
  check_gradient([&](const Tensor& t) { return wsum(x * t); }, col);
  check_gradient([&](const Tensor& t) { return wsum(x / t); }, col);
  check_gradient([&](const Tensor& t) { return wsum(t / col); }, x);
  check_gradient([&](const Tensor& t) { return wsum(-t * 3.0f + 1.0f); }, x);
  check_gradient([&](const Tensor& t) { return wsum(exp(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(log(t)); }, pos);
  check_gradient([&](const Tensor& t) { return wsum(sqrt(t)); }, pos);
  check_gradient([&](const Tensor& t) { return wsum(rsqrt(t)); }, pos);
  check_gradient([&](const Tensor& t) { return wsum(square(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(abs(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(tanh(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(sigmoid(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(relu(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(gelu(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(gelu(t, false)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(silu(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(pow(t, 2.5f)); }, pos);
  check_gradient([&](const Tensor& t) { return wsum(clip(t, -0.7f, 0.9f)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(maximum(t, row)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(minimum(x, t)); }, row);
  check_gradient([&](const Tensor& t) { return wsum(where(x > 0.0f, t, t * t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(where(x > 0.0f, x, t)); }, row);
}

TEST_CASE("a non-differentiable op under grad is an error naming it") {
  const Tensor x = pattern(Shape{3});
  check_throws_with<Error>([&] { (void)grad([](const Tensor& t) { return sum(astype(astype(t, DType::int32), DType::float32)); })(x); },
                           {"astype(int32)", "not differentiable", "stop_gradient"});
  // Through stop_gradient the same computation is allowed and contributes nothing.
  const Tensor g = grad([](const Tensor& t) { return sum(astype(astype(stop_gradient(t), DType::int32), DType::float32)) + sum(t); })(x);
  check_close(g, {1, 1, 1}, Shape{3});
}

// ---------------------------------------------------------------- jax.nn activations

namespace {
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

/// f applied to every element of x in double, rounded to float32: the reference of an elementwise op.
template <class F>
std::vector<float> reference(const Tensor& x, F f) {
  std::vector<float> out;
  for (float v : x.to_vector()) out.push_back(static_cast<float>(f(double{v})));
  return out;
}

/// The gradient of sum(f(x)) at x: f' elementwise.
std::vector<float> derivative(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  return grad([&](const Tensor& t) { return sum(f(t)); })(x).to_vector();
}
}  // namespace

TEST_CASE("jax.nn activations match their closed forms") {
  const Tensor x({-2.f, -0.5f, 0.f, 0.5f, 2.f}, Shape{5});
  const Shape s{5};
  check_close(leaky_relu(x), reference(x, [](double v) { return v >= 0 ? v : 0.01 * v; }), s);
  check_close(leaky_relu(x, 0.2f), {-0.4f, -0.1f, 0.f, 0.5f, 2.f}, s);
  check_close(elu(x), reference(x, [](double v) { return v > 0 ? v : std::expm1(v); }), s);
  check_close(elu(x, 0.5f), reference(x, [](double v) { return v > 0 ? v : 0.5 * std::expm1(v); }), s);
  check_close(selu(x), reference(x, [](double v) { return kSeluScale * (v > 0 ? v : kSeluAlpha * std::expm1(v)); }), s);
  check_close(celu(x), reference(x, [](double v) { return std::max(v, 0.0) + std::expm1(std::min(v, 0.0)); }), s);
  check_close(celu(x, 2.0f),
              reference(x, [](double v) { return std::max(v, 0.0) + 2.0 * std::expm1(std::min(v, 0.0) / 2.0); }), s);
  check_close(softplus(x), reference(x, [](double v) { return std::log(1.0 + std::exp(v)); }), s);
  check_close(log_sigmoid(x), reference(x, [](double v) { return -std::log(1.0 + std::exp(-v)); }), s);
  check_close(swish(x), silu(x), 0.0f, 0.0f);
  const Tensor wide({-3.f, -1.f, -0.5f, 0.5f, 1.f, 3.f}, Shape{6});
  check_close(hard_tanh(wide), {-1.f, -1.f, -0.5f, 0.5f, 1.f, 1.f}, Shape{6}, 0.0f, 0.0f);
  // Values derived by hand: expm1(-1) = -0.63212056, 2 expm1(-1/2) = -0.78693868, sigmoid(3) = 0.95257413,
  // sigmoid(4) = 0.98201379.
  check_close(elu(Tensor(-1.0f)), {-0.63212056f}, Shape{}, 1e-7f);
  check_close(celu(Tensor(-1.0f), 2.0f), {-0.78693868f}, Shape{}, 1e-7f);
  check_close(selu(Tensor(1.0f)), {1.05070099f}, Shape{}, 1e-7f);
  check_close(glu(Tensor({1.f, 2.f, 3.f, 4.f}, Shape{4})), {0.95257413f, 2.0f * 0.98201379f}, Shape{2}, 1e-6f);
}

TEST_CASE("jax.nn activations: special values and large inputs") {
  const float inf = std::numeric_limits<float>::infinity();
  // softplus(0) = log 2, log_sigmoid(0) = -log 2, exactly as jax.
  check_close(softplus(Tensor(0.0f)), {0.69314718f}, Shape{}, 1e-7f, 0.0f);
  check_close(log_sigmoid(Tensor(0.0f)), {-0.69314718f}, Shape{}, 1e-7f, 0.0f);
  // |x| = 100 would overflow exp(100) in a naive log(1 + exp(x)); the stable forms stay finite.
  const Tensor big({-100.f, 100.f}, Shape{2});
  check_close(softplus(big), {0.0f, 100.0f}, Shape{2}, 1e-30f, 0.0f);
  check_close(log_sigmoid(big), {-100.0f, 0.0f}, Shape{2}, 1e-30f, 0.0f);
  check_close(Tensor(derivative(softplus, big), Shape{2}), {0.0f, 1.0f}, Shape{2}, 1e-30f, 0.0f);
  check_close(Tensor(derivative(log_sigmoid, big), Shape{2}), {1.0f, 0.0f}, Shape{2}, 1e-30f, 0.0f);
  // The limits at -inf: elu -> -alpha, selu -> -scale * alpha, celu -> -alpha, softplus -> 0.
  const Tensor ninf(-inf);
  check_close(elu(ninf, 0.5f), {-0.5f}, Shape{}, 0.0f, 0.0f);
  check_close(selu(ninf), {static_cast<float>(-kSeluScale * kSeluAlpha)}, Shape{}, 1e-6f, 0.0f);
  check_close(selu(ninf), {-1.75809934f}, Shape{}, 1e-6f, 0.0f);
  check_close(celu(ninf, 2.0f), {-2.0f}, Shape{}, 0.0f, 0.0f);
  check_close(softplus(Tensor({-inf, inf}, Shape{2})), {0.0f, inf}, Shape{2}, 0.0f, 0.0f);
  check_close(log_sigmoid(Tensor({-inf, inf}, Shape{2})), {-inf, 0.0f}, Shape{2}, 0.0f, 0.0f);
  check_close(hard_tanh(Tensor({-inf, inf}, Shape{2})), {-1.0f, 1.0f}, Shape{2}, 0.0f, 0.0f);
}

TEST_CASE("jax.nn activations: gradients at the kinks follow jax's definitions") {
  const Tensor zero(0.0f);
  // leaky_relu is where(x >= 0, x, slope * x): the x branch at 0.
  CHECK(derivative([](const Tensor& t) { return leaky_relu(t); }, zero) == std::vector<float>{1.0f});
  CHECK(derivative([](const Tensor& t) { return leaky_relu(t, 0.2f); }, Tensor(-1.0f)) == std::vector<float>{0.2f});
  // elu is where(x > 0, x, alpha * expm1(x)): the expm1 branch at 0, slope alpha; selu scales it.
  CHECK(derivative([](const Tensor& t) { return elu(t, 0.5f); }, zero) == std::vector<float>{0.5f});
  check_close(Tensor(derivative(selu, zero), Shape{}), {static_cast<float>(kSeluScale * kSeluAlpha)}, Shape{}, 1e-6f, 0.0f);
  // celu is smooth at 0.
  CHECK(derivative([](const Tensor& t) { return celu(t, 2.0f); }, zero) == std::vector<float>{1.0f});
  // hard_tanh is where(x > 1, 1, where(x < -1, -1, x)): slope 1 on the closed interval, 0 outside.
  const Tensor edges({-1.5f, -1.0f, 0.0f, 1.0f, 1.5f}, Shape{5});
  CHECK(derivative(hard_tanh, edges) == std::vector<float>{0.0f, 1.0f, 1.0f, 1.0f, 0.0f});
  CHECK(derivative(softplus, zero) == std::vector<float>{0.5f});
  CHECK(derivative(log_sigmoid, zero) == std::vector<float>{0.5f});
}

TEST_CASE("jax.nn activations: gradients match finite differences") {
  const Tensor x = pattern(Shape{2, 3}, -1.5f, 1.5f);  // no element within the step of a kink
  auto wsum = [](const Tensor& t) { return sum(t * pattern(t.shape(), -1.0f, 1.0f, 9)); };
  check_gradient([&](const Tensor& t) { return wsum(leaky_relu(t, 0.1f)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(elu(t, 0.7f)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(selu(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(celu(t, 0.5f)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(softplus(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(log_sigmoid(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(swish(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(hard_tanh(t)); }, x);
  check_gradient([&](const Tensor& t) { return wsum(glu(t)); }, pattern(Shape{3, 4}, -2.0f, 2.0f, 1));
  check_gradient([&](const Tensor& t) { return wsum(glu(t, 0)); }, pattern(Shape{4, 3}, -2.0f, 2.0f, 2));
}

TEST_CASE("glu halves the chosen axis") {
  const Tensor x({1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f}, Shape{2, 4});
  const auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  check_close(glu(x), {float(1 * sig(3)), float(2 * sig(4)), float(5 * sig(7)), float(6 * sig(8))}, Shape{2, 2});
  check_close(glu(x, 0), {float(1 * sig(5)), float(2 * sig(6)), float(3 * sig(7)), float(4 * sig(8))}, Shape{1, 4});
  check_close(glu(x, -2), glu(x, 0), 0.0f, 0.0f);
}

TEST_CASE("jax.nn activations: bad inputs name the op") {
  const Tensor i = arange(4, DType::int32);
  check_throws_with<DTypeError>([&] { (void)leaky_relu(i); }, {"weft::leaky_relu", "float32", "int32", "astype"});
  check_throws_with<DTypeError>([&] { (void)elu(i); }, {"weft::elu", "int32"});
  check_throws_with<DTypeError>([&] { (void)selu(i); }, {"weft::selu", "int32"});
  check_throws_with<DTypeError>([&] { (void)celu(i); }, {"weft::celu", "int32"});
  check_throws_with<DTypeError>([&] { (void)softplus(i); }, {"weft::softplus", "int32"});
  check_throws_with<DTypeError>([&] { (void)log_sigmoid(i); }, {"weft::log_sigmoid", "int32"});
  check_throws_with<DTypeError>([&] { (void)hard_tanh(i); }, {"weft::hard_tanh", "int32"});
  check_throws_with<DTypeError>([&] { (void)swish(i); }, {"weft::swish", "int32"});
  check_throws_with<DTypeError>([&] { (void)glu(i); }, {"weft::glu", "int32"});
  check_throws_with<ShapeError>([&] { (void)glu(ones(Shape{2, 3})); },
                                {"weft::glu", "axis -1", "(2, 3)", "odd extent 3", "even extent"});
  check_throws_with<ShapeError>([&] { (void)glu(ones(Shape{3, 2}), 0); }, {"weft::glu", "axis 0", "(3, 2)", "odd extent 3"});
  check_throws_with<ShapeError>([&] { (void)glu(ones(Shape{2, 2}), 2); }, {"weft::glu", "axis 2", "out of range"});
  check_throws_with<ValueError>([&] { (void)celu(ones(Shape{2}), 0.0f); }, {"weft::celu", "alpha", "nonzero"});
}
