#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "testing.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_same_on_1_and_2_threads;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

/// For each element of the reduced result (row-major, keepdims order), the flat positions of x that
/// it reduces, in row-major order: a reference that shares no code with the kernels.
std::vector<std::vector<std::int64_t>> groups(const Shape& shape, const std::set<int>& axes) {
  std::vector<std::int64_t> kept;
  for (int d = 0; d < shape.rank(); ++d) kept.push_back(axes.count(d) ? 1 : shape[d]);
  const Shape ks(kept);
  std::vector<std::vector<std::int64_t>> out(static_cast<std::size_t>(ks.numel()));
  std::vector<std::int64_t> idx(static_cast<std::size_t>(shape.rank()), 0);
  for (std::int64_t i = 0; i < shape.numel(); ++i) {
    std::int64_t o = 0;
    for (int d = 0; d < shape.rank(); ++d) o = o * ks[d] + (axes.count(d) ? 0 : idx[static_cast<std::size_t>(d)]);
    out[static_cast<std::size_t>(o)].push_back(i);
    for (int d = shape.rank() - 1; d >= 0; --d) {
      if (++idx[static_cast<std::size_t>(d)] < shape[d]) break;
      idx[static_cast<std::size_t>(d)] = 0;
    }
  }
  return out;
}

/// f applied (in double) to the values of each group.
template <class F>
std::vector<float> reduce_ref(const Tensor& x, const std::set<int>& axes, F f) {
  const auto v = x.to_vector();
  std::vector<float> out;
  for (const auto& g : groups(x.shape(), axes)) {
    std::vector<double> vals;
    for (auto i : g) vals.push_back(v[static_cast<std::size_t>(i)]);
    out.push_back(static_cast<float>(f(vals)));
  }
  return out;
}

double ref_max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double ref_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double ref_var(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double a : v) m += a;
  m /= static_cast<double>(v.size());
  for (double a : v) s += (a - m) * (a - m);
  return s / static_cast<double>(v.size());
}
double ref_lse(const std::vector<double>& v) {
  double s = 0;
  for (double a : v) s += std::exp(a);
  return std::log(s);
}

/// softmax (or log_softmax) of x along `axis` by the definition, in double.
std::vector<float> softmax_ref(const Tensor& x, int axis, bool log_form) {
  const auto v = x.to_vector();
  std::vector<float> out(v.size());
  for (const auto& g : groups(x.shape(), {axis})) {
    double s = 0;
    for (auto i : g) s += std::exp(static_cast<double>(v[static_cast<std::size_t>(i)]));
    for (auto i : g) {
      const double xi = v[static_cast<std::size_t>(i)];
      out[static_cast<std::size_t>(i)] = static_cast<float>(log_form ? xi - std::log(s) : std::exp(xi) / s);
    }
  }
  return out;
}

Shape reduced(const Shape& s, const std::set<int>& axes, bool keepdims) {
  std::vector<std::int64_t> d;
  for (int i = 0; i < s.rank(); ++i) {
    if (!axes.count(i))
      d.push_back(s[i]);
    else if (keepdims)
      d.push_back(1);
  }
  return Shape(d);
}

auto readout(const Tensor& t) { return sum(t * pattern(t.shape(), -1.0f, 1.0f, 5)); }

void check_no_nan_or_inf(const Tensor& t) {
  for (float v : t.to_vector()) CHECK(std::isfinite(v));
}

}  // namespace

// ---------------------------------------------------------------- max, min

TEST_CASE("max and min: hand-computed values over axes, with keepdims") {
  const Tensor x({1.f, 5.f, 3.f, 4.f, 2.f, 6.f}, Shape{2, 3});
  check_close(max(x), {6}, Shape{});
  check_close(min(x), {1}, Shape{});
  check_close(max(x, 0), {4, 5, 6}, Shape{3});
  check_close(max(x, 1), {5, 6}, Shape{2});
  check_close(max(x, -1, true), {5, 6}, Shape{2, 1});
  check_close(min(x, 0, true), {1, 2, 3}, Shape{1, 3});
  check_close(min(x, {1}), {1, 2}, Shape{2});
  check_close(max(x, {0, 1}, true), {6}, Shape{1, 1});
  check_close(max(x, Axes(std::vector<int>{})), x);  // no axes: the identity
  // Non-contiguous axis sets of a rank-3 tensor, against a reference.
  const Tensor y = pattern(Shape{2, 3, 4}, -3.0f, 3.0f);
  for (const std::set<int>& axes : std::vector<std::set<int>>{{0, 2}, {1}, {0, 1}, {1, 2}, {0, 1, 2}}) {
    const Axes ax(std::vector<int>(axes.begin(), axes.end()));
    for (bool keep : {false, true}) {
      check_close(max(y, ax, keep), reduce_ref(y, axes, ref_max), reduced(y.shape(), axes, keep));
      check_close(min(y, ax, keep), reduce_ref(y, axes, ref_min), reduced(y.shape(), axes, keep));
    }
  }
  check_close(max(arange(24), {0}), {23}, Shape{});
  check_close(max(reshape(arange(24), {2, 3, 4}), {0, 2}), {15, 19, 23}, Shape{3});
  check_close(min(reshape(arange(24), {2, 3, 4}), {-1, 0}, true), {0, 4, 8}, Shape{1, 3, 1});
  // A scalar reduces to itself; NaN propagates.
  check_close(max(Tensor(2.5f)), {2.5f}, Shape{});
  CHECK(std::isnan(max(Tensor({1.f, kNaN, 3.f}, Shape{3})).item()));
  CHECK(std::isnan(min(Tensor({1.f, kNaN, 3.f}, Shape{3})).item()));
  check_close(max(Tensor({-kInf, -kInf}, Shape{2})), {-kInf}, Shape{});
}

TEST_CASE("max and min of int32 tensors stay int32") {
  const Tensor x(std::vector<std::int32_t>{3, -1, 7, 2, -8, 5}, Shape{2, 3});
  const Tensor m = max(x, 1);
  CHECK(m.dtype() == DType::int32);
  CHECK(m.to_int_vector() == std::vector<std::int32_t>{7, 5});
  CHECK(min(x, 0).to_int_vector() == std::vector<std::int32_t>{2, -8, 5});
  CHECK(min(x).to_int_vector() == std::vector<std::int32_t>{-8});
  CHECK(max(x, {0, 1}, true).to_int_vector() == std::vector<std::int32_t>{7});
  CHECK(max(x, {0, 1}, true).shape() == Shape{1, 1});
  // Extremes of int32 (no float identity sneaks in).
  const Tensor big(std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min()}, Shape{1});
  CHECK(max(big).item() == static_cast<float>(std::numeric_limits<std::int32_t>::min()));
}

TEST_CASE("max and min gradients: ties share the gradient equally, as JAX") {
  const Tensor x({1.f, 3.f, 3.f, 2.f, 2.f, 2.f}, Shape{2, 3});
  const Tensor w({2.f, 6.f}, Shape{2});
  check_close(grad([&](const Tensor& t) { return sum(max(t, 1) * w); })(x), {0, 1, 1, 2, 2, 2}, Shape{2, 3});
  check_close(grad([&](const Tensor& t) { return sum(min(t, 1, true) * reshape(w, {2, 1})); })(x),
              {2, 0, 0, 2, 2, 2}, Shape{2, 3});
  check_close(grad([](const Tensor& t) { return max(t); })(Tensor({1.f, 3.f, 3.f, 0.f}, Shape{2, 2})),
              {0, 0.5f, 0.5f, 0}, Shape{2, 2});
  check_close(grad([](const Tensor& t) { return min(t); })(Tensor({1.f, 3.f, 3.f, 0.f}, Shape{2, 2})),
              {0, 0, 0, 1}, Shape{2, 2});
  // Finite differences away from ties, on every axis position.
  const Tensor y = pattern(Shape{2, 3, 4});
  check_gradient([](const Tensor& t) { return readout(max(t, 0)); }, y);
  check_gradient([](const Tensor& t) { return readout(max(t, 1)); }, y);
  check_gradient([](const Tensor& t) { return readout(max(t, -1, true)); }, y);
  check_gradient([](const Tensor& t) { return readout(min(t, {0, 2})); }, y);
  check_gradient([](const Tensor& t) { return max(t) - min(t); }, y);
  check_gradient([](const Tensor& t) { return readout(min(t, 1)); }, pattern(Shape{5, 7}));
}

TEST_CASE("max and min errors: empty reductions, bad axes") {
  check_throws_with<ValueError>([] { (void)max(zeros(Shape{0, 3}), 0); }, {"weft::max", "extent 0", "(0, 3)"});
  check_throws_with<ValueError>([] { (void)min(zeros(Shape{2, 0})); }, {"weft::min", "extent 0"});
  CHECK(max(zeros(Shape{0, 3}), 1).shape() == Shape{0});  // nothing to reduce per row, and no rows
  check_throws_with<ShapeError>([] { (void)max(ones(Shape{2, 3}), 2); }, {"weft::max", "axis 2", "rank 2"});
  check_throws_with<ShapeError>([] { (void)min(ones(Shape{2, 3}), {1, -1}); }, {"weft::min", "twice"});
  check_throws_with<Error>([] { (void)max(Tensor()); }, {"weft::max", "empty"});
}

// ---------------------------------------------------------------- var

TEST_CASE("var: biased variance, hand-computed, over axes and keepdims") {
  const Tensor x({1.f, 2.f, 3.f, 4.f, 2.f, 4.f, 6.f, 8.f}, Shape{2, 4});
  check_close(var(x, 1), {1.25f, 5.0f}, Shape{2});
  check_close(var(x, 0), {0.25f, 1.0f, 2.25f, 4.0f}, Shape{4});
  check_close(var(x), {4.6875f}, Shape{});
  check_close(var(x, -1, true), {1.25f, 5.0f}, Shape{2, 1});
  const Tensor y = pattern(Shape{3, 4, 5}, -2.0f, 2.0f);
  for (const std::set<int>& axes : std::vector<std::set<int>>{{0, 2}, {1}, {2}, {0, 1, 2}}) {
    const Axes ax(std::vector<int>(axes.begin(), axes.end()));
    check_close(var(y, ax, true), reduce_ref(y, axes, ref_var), reduced(y.shape(), axes, true));
  }
  // int32 input gives a float32 variance.
  check_close(var(Tensor(std::vector<std::int32_t>{1, 2, 3, 4}, Shape{4})), {1.25f}, Shape{});
  // Numerically sound: a large mean does not swamp a small spread (E[x^2] - E[x]^2 gives 0 or worse).
  check_close(var(Tensor({1e6f, 1e6f + 1, 1e6f + 2, 1e6f + 3}, Shape{4})), {1.25f}, Shape{}, 1e-6f);
  check_close(var(full(Shape{7}, 3.3f)), {0}, Shape{}, 1e-12f);
  check_throws_with<ValueError>([] { (void)var(zeros(Shape{0, 2}), 0); }, {"weft::var", "no elements"});
  // mean shares the check: an empty reduction has no average (NumPy would give NaN with a warning).
  check_throws_with<ValueError>([] { (void)mean(zeros(Shape{2, 0}), 1); }, {"weft::mean", "no elements", "(2, 0)"});
  CHECK(mean(zeros(Shape{0, 2}), 1).shape() == Shape{0});  // no rows: nothing to average, no error
}

TEST_CASE("var gradient matches finite differences") {
  const Tensor y = pattern(Shape{2, 3, 4});
  check_gradient([](const Tensor& t) { return readout(var(t, 0)); }, y);
  check_gradient([](const Tensor& t) { return readout(var(t, 1)); }, y);
  check_gradient([](const Tensor& t) { return readout(var(t, -1, true)); }, y);
  check_gradient([](const Tensor& t) { return readout(var(t, {0, 2})); }, y);
  check_gradient([](const Tensor& t) { return var(t); }, y);
  // Closed form: d var / dx = 2 (x - mean) / n.
  check_close(grad([](const Tensor& t) { return var(t); })(Tensor({1.f, 2.f, 3.f, 6.f}, Shape{4})),
              {-1.0f, -0.5f, 0.0f, 1.5f}, Shape{4});
}

// ---------------------------------------------------------------- standardize

TEST_CASE("standardize: (x - mean) / sqrt(var + epsilon), as jax.nn.standardize") {
  const float d = std::sqrt(1.25f + 1e-5f);  // var of 1, 2, 3, 4 is 1.25
  check_close(standardize(Tensor({1.f, 2.f, 3.f, 4.f}, Shape{4})), {-1.5f / d, -0.5f / d, 0.5f / d, 1.5f / d},
              Shape{4});
  // A mean large against the spread: subtracting it first keeps every digit (E[x^2] - E[x]^2 in
  // float32 would lose them all).
  check_close(standardize(Tensor({10001.f, 10002.f, 10003.f, 10004.f}, Shape{4})),
              standardize(Tensor({1.f, 2.f, 3.f, 4.f}, Shape{4})), 1e-6f, 0.0f);
  // Over axis 0 with epsilon 0: columns with means 2, 4, 6 and deviations 1, 2, 3.
  const Tensor x({1.f, 2.f, 3.f, 3.f, 6.f, 9.f}, Shape{2, 3});
  check_close(standardize(x, 0, 0.0f), {-1, -1, -1, 1, 1, 1}, Shape{2, 3});
  // Rows by default; every axis at once; a constant row gives 0, kept finite by epsilon.
  check_close(standardize(x), {-1.2247357f, 0.0f, 1.2247357f, -1.2247439f, 0.0f, 1.2247439f}, Shape{2, 3});
  check_close(standardize(x, {0, 1}), reshape(standardize(reshape(x, Shape{6})), Shape{2, 3}));
  check_close(standardize(full(Shape{2, 3}, 7.0f)), std::vector<float>(6, 0.0f), Shape{2, 3}, 0.0f, 0.0f);
}

TEST_CASE("standardize gradient matches finite differences; bad inputs name it") {
  const Tensor y = pattern(Shape{2, 3, 4}, -2.0f, 2.0f, 4);
  check_gradient([](const Tensor& t) { return readout(standardize(t)); }, y);
  check_gradient([](const Tensor& t) { return readout(standardize(t, 0)); }, y);
  check_gradient([](const Tensor& t) { return readout(standardize(t, {0, 2}, 1e-3f)); }, y);
  // The standardized values sum to 0 whatever x is: that sum has no gradient.
  check_close(grad([](const Tensor& t) { return sum(standardize(t)); })(y), std::vector<float>(24, 0.0f), y.shape(),
              1e-5f, 0.0f);
  check_throws_with<DTypeError>([] { (void)standardize(arange(4, DType::int32)); },
                                {"weft::standardize", "float32", "int32"});
  check_throws_with<ShapeError>([] { (void)standardize(ones(Shape{2, 3}), 2); }, {"weft::standardize", "axis 2"});
  check_throws_with<ValueError>([] { (void)standardize(zeros(Shape{2, 0})); }, {"standardize"});
}

// ---------------------------------------------------------------- argmax

TEST_CASE("argmax: first index on ties, NaN counts as the maximum, any axis") {
  const Tensor x({1.f, 5.f, 5.f, 7.f, 2.f, 7.f}, Shape{2, 3});
  const Tensor a1 = argmax(x);
  CHECK(a1.dtype() == DType::int32);
  CHECK(a1.shape() == Shape{2});
  CHECK(a1.to_int_vector() == std::vector<std::int32_t>{1, 0});
  CHECK(argmax(x, 0).to_int_vector() == std::vector<std::int32_t>{1, 0, 1});
  CHECK(argmax(x, -1, true).shape() == Shape{2, 1});
  CHECK(argmax(x, 0, true).shape() == Shape{1, 3});
  CHECK(argmax(Tensor({1.f, kNaN, 3.f, kNaN}, Shape{4})).to_int_vector() == std::vector<std::int32_t>{1});
  CHECK(argmax(Tensor({kNaN, 9.f}, Shape{2})).to_int_vector() == std::vector<std::int32_t>{0});
  CHECK(argmax(Tensor({-kInf, -kInf, -1e30f}, Shape{3})).to_int_vector() == std::vector<std::int32_t>{2});
  // A middle axis (vectorised path), with ties and a NaN, against the definition.
  const Tensor y({0.f, 4.f, 4.f, 1.f, 9.f, kNaN, 3.f, 1.f, 9.f, kNaN, 2.f, 2.f}, Shape{2, 3, 2});
  CHECK(argmax(y, 1).to_int_vector() == std::vector<std::int32_t>{2, 2, 1, 1});
  CHECK(argmax(y, 0).to_int_vector() == std::vector<std::int32_t>{1, 0, 1, 1, 0, 0});
  CHECK(argmax(y, 2).to_int_vector() == std::vector<std::int32_t>{1, 0, 1, 0, 1, 0});
  // Long rows (the vectorised path): ties keep the first maximum; the first NaN wins.
  std::vector<float> long_rows(80, 1.0f);
  long_rows[17] = long_rows[30] = 9.0f;
  long_rows[40 + 33] = long_rows[40 + 2] = kNaN;
  long_rows[40 + 25] = 50.0f;
  CHECK(argmax(Tensor(long_rows, Shape{2, 40})).to_int_vector() == std::vector<std::int32_t>{17, 2});
  CHECK(std::isnan(max(Tensor(long_rows, Shape{2, 40}), 1).to_vector()[1]));
  check_close(max(Tensor(long_rows, Shape{2, 40}), 1, true), {9.0f, kNaN}, Shape{2, 1});
  // int32 inputs.
  CHECK(argmax(Tensor(std::vector<std::int32_t>{3, 8, 8, -1}, Shape{2, 2}), 0).to_int_vector() ==
        std::vector<std::int32_t>{1, 0});
  // Larger shapes against a reference (first maximum along the axis).
  const Tensor z = pattern(Shape{3, 70, 5});
  for (int axis : {0, 1, 2}) {
    const auto v = z.to_vector();
    std::vector<std::int32_t> expected;
    for (const auto& g : groups(z.shape(), {axis})) {
      std::size_t best = 0;
      for (std::size_t k = 1; k < g.size(); ++k)
        if (v[static_cast<std::size_t>(g[k])] > v[static_cast<std::size_t>(g[best])]) best = k;
      expected.push_back(static_cast<std::int32_t>(best));
    }
    CHECK(argmax(z, axis).to_int_vector() == expected);
  }
}

TEST_CASE("argmax is allowed on tracked inputs and its result is not tracked") {
  // The accuracy-style use: pick the predicted class inside a differentiated function.
  const Tensor logits({0.1f, 0.7f, 0.2f, 0.9f, 0.3f, 0.4f}, Shape{2, 3});
  const Tensor g = grad([](const Tensor& t) {
    const Tensor pred = argmax(t);
    CHECK_FALSE(pred.is_tracked());
    return sum(t * one_hot(pred, 3));
  })(logits);
  check_close(g, {0, 1, 0, 1, 0, 0}, Shape{2, 3});
}

TEST_CASE("argmax errors") {
  check_throws_with<ValueError>([] { (void)argmax(zeros(Shape{2, 0})); }, {"weft::argmax", "extent 0", "(2, 0)"});
  check_throws_with<ShapeError>([] { (void)argmax(ones(Shape{2, 3}), 3); }, {"weft::argmax", "axis 3"});
  check_throws_with<ShapeError>([] { (void)argmax(Tensor(1.0f)); }, {"weft::argmax", "rank 0"});
}

// ---------------------------------------------------------------- logsumexp

TEST_CASE("logsumexp: hand-computed values, axes, keepdims") {
  const Tensor x({0.f, 0.f, 1.f, 2.f}, Shape{2, 2});
  const float l2 = std::log(2.0f);
  check_close(logsumexp(x, 1), {l2, 2.0f + std::log1p(std::exp(-1.0f))}, Shape{2});
  check_close(logsumexp(x, 0, true), {std::log(1.0f + std::exp(1.0f)), std::log(1.0f + std::exp(2.0f))}, Shape{1, 2});
  check_close(logsumexp(x), {std::log(2.0f + std::exp(1.0f) + std::exp(2.0f))}, Shape{});
  const Tensor y = pattern(Shape{2, 3, 4}, -3.0f, 3.0f);
  for (const std::set<int>& axes : std::vector<std::set<int>>{{0, 2}, {1}, {2}, {0, 1, 2}}) {
    const Axes ax(std::vector<int>(axes.begin(), axes.end()));
    for (bool keep : {false, true})
      check_close(logsumexp(y, ax, keep), reduce_ref(y, axes, ref_lse), reduced(y.shape(), axes, keep));
  }
}

TEST_CASE("logsumexp: extreme logits stay finite; an all -inf row gives -inf") {
  const Tensor x({1e4f, 1e4f, -1e4f, -1e4f, 1e4f, -1e4f, -kInf, 0.f, -kInf, -kInf}, Shape{5, 2});
  const Tensor l = logsumexp(x, 1);
  check_close(l, {1e4f + std::log(2.0f), -1e4f + std::log(2.0f), 1e4f, 0.0f, -kInf}, Shape{5}, 1e-6f, 1e-6f);
  // +inf dominates; NaN propagates.
  CHECK(logsumexp(Tensor({kInf, 0.f}, Shape{2})).item() == kInf);
  CHECK(std::isnan(logsumexp(Tensor({kNaN, 0.f}, Shape{2})).item()));
  // The log of an empty sum.
  check_close(logsumexp(zeros(Shape{2, 0}), 1), {-kInf, -kInf}, Shape{2});
  // Gradients at extreme logits are the (finite) softmax weights.
  const Tensor big({1e4f, 1e4f - 1.0f, -1e4f, -1e4f - 1.0f}, Shape{2, 2});
  const Tensor g = grad([](const Tensor& t) { return sum(logsumexp(t, 1)); })(big);
  const float s1 = 1.0f / (1.0f + std::exp(-1.0f));
  check_close(g, {s1, 1.0f - s1, s1, 1.0f - s1}, Shape{2, 2}, 1e-6f);
  check_close(grad([](const Tensor& t) { return logsumexp(t); })(Tensor({-kInf, 0.f}, Shape{2})), {0, 1}, Shape{2});
  check_throws_with<DTypeError>([] { (void)logsumexp(arange(3, DType::int32)); }, {"weft::logsumexp", "float32"});
}

TEST_CASE("logsumexp gradient: softmax weights, finite differences on every axis") {
  const Tensor y = pattern(Shape{2, 3, 4}, -2.0f, 2.0f);
  check_close(grad([](const Tensor& t) { return sum(logsumexp(t, 1)); })(y), softmax_ref(y, 1, false), y.shape());
  check_gradient([](const Tensor& t) { return readout(logsumexp(t, 0)); }, y);
  check_gradient([](const Tensor& t) { return readout(logsumexp(t, 1)); }, y);
  check_gradient([](const Tensor& t) { return readout(logsumexp(t, -1, true)); }, y);
  check_gradient([](const Tensor& t) { return readout(logsumexp(t, {0, 2})); }, y);
  check_gradient([](const Tensor& t) { return logsumexp(t); }, y);
}

// ---------------------------------------------------------------- softmax, log_softmax

TEST_CASE("softmax and log_softmax: hand-computed values") {
  const Tensor x({1.f, 2.f, 3.f}, Shape{3});
  check_close(softmax(x), {0.09003057f, 0.24472847f, 0.66524096f}, Shape{3}, 1e-7f);
  check_close(log_softmax(x), {-2.40760596f, -1.40760596f, -0.40760596f}, Shape{3}, 1e-6f);
  // Shift invariance: the same values for x + 100.
  check_close(softmax(x + 100.0f), {0.09003057f, 0.24472847f, 0.66524096f}, Shape{3}, 1e-7f);
  // Axis 0 of a (2, 2): [[0, 1], [ln 3, 1]] gives columns (1/4, 3/4) and (1/2, 1/2).
  const Tensor y({0.f, 1.f, std::log(3.0f), 1.f}, Shape{2, 2});
  check_close(softmax(y, 0), {0.25f, 0.5f, 0.75f, 0.5f}, Shape{2, 2}, 1e-7f);
  check_close(log_softmax(y, 0), {std::log(0.25f), std::log(0.5f), std::log(0.75f), std::log(0.5f)}, Shape{2, 2}, 1e-6f);
}

TEST_CASE("softmax and log_softmax agree with the definition on every axis, across tile and lane boundaries") {
  // Last-axis rows of 37 (two full lane groups and a tail); middle and first axes with 70 and
  // 130 neighbouring rows (more than one tile of 64).
  for (const Shape& s : {Shape{3, 37}, Shape{2, 5, 70}, Shape{4, 130}, Shape{3, 2, 4}}) {
    const Tensor x = pattern(s, -4.0f, 4.0f);
    for (int axis = 0; axis < s.rank(); ++axis) {
      INFO("shape " << s << " axis " << axis);
      check_close(softmax(x, axis), softmax_ref(x, axis, false), s, 1e-7f, 1e-5f);
      check_close(log_softmax(x, axis), softmax_ref(x, axis, true), s, 1e-5f, 1e-5f);
      check_close(sum(softmax(x, axis), axis), ones(reduced(s, {axis}, false)), 1e-6f);
    }
  }
}

TEST_CASE("softmax is accurate to a few ulp over the whole range of exponents") {
  // Rows (0, -t): the second probability is exp(-t) / (1 + exp(-t)), from 0.5 down to below 1e-38.
  std::vector<float> v, expected;
  for (int i = 0; i < 300; ++i) {
    const double t = 0.31 * i;
    v.push_back(0.0f);
    v.push_back(static_cast<float>(-t));
    const double e = std::exp(-static_cast<double>(static_cast<float>(t)));
    expected.push_back(static_cast<float>(1.0 / (1.0 + e)));
    expected.push_back(static_cast<float>(e / (1.0 + e)));
  }
  check_close(softmax(Tensor(v, Shape{300, 2})), expected, Shape{300, 2}, 1e-37f, 1e-6f);
  check_close(softmax(transpose(Tensor(v, Shape{300, 2})), 0), transpose(Tensor(expected, Shape{300, 2})), 1e-37f, 1e-6f);
}

TEST_CASE("softmax and log_softmax at extreme logits: no NaN or inf where the math is finite") {
  const Tensor x({1e4f, -1e4f, 1e4f, 1e4f, -1e4f, -1e4f, 0.f, 1e4f}, Shape{4, 2});
  const Tensor p = softmax(x);
  check_no_nan_or_inf(p);
  check_close(p, {1, 0, 0.5f, 0.5f, 0.5f, 0.5f, 0, 1}, Shape{4, 2}, 1e-7f);
  const Tensor lp = log_softmax(x);
  check_no_nan_or_inf(lp);
  check_close(lp, {0, -2e4f, -std::log(2.0f), -std::log(2.0f), -std::log(2.0f), -std::log(2.0f), -1e4f, 0}, Shape{4, 2},
              1e-6f, 1e-6f);
  // The same along axis 0 (the tiled path).
  const Tensor xt = transpose(x);
  check_close(softmax(xt, 0), transpose(p));
  check_close(log_softmax(xt, 0), transpose(lp));
  // -inf entries get probability 0 (log-probability -inf); the rest is finite.
  check_close(softmax(Tensor({-kInf, 0.f, -kInf, 1.f}, Shape{4})), {0, 1.0f / (1.0f + std::exp(1.0f)), 0,
                                                                    1.0f / (1.0f + std::exp(-1.0f))},
              Shape{4}, 1e-7f);
  check_close(log_softmax(Tensor({-kInf, 0.f}, Shape{2})), {-kInf, 0}, Shape{2});
  // A row of only -inf is 0/0: NaN, as JAX (there is no distribution to give).
  for (float v : softmax(full(Shape{3}, -kInf)).to_vector()) CHECK(std::isnan(v));
  // Gradients at extreme logits are finite and exact.
  const Tensor w({2.f, 3.f}, Shape{2});
  const Tensor ext({1e4f, -1e4f}, Shape{2});
  const Tensor gs = grad([&](const Tensor& t) { return sum(softmax(t) * w); })(ext);
  check_close(gs, {0, 0}, Shape{2});
  const Tensor gl = grad([&](const Tensor& t) { return sum(log_softmax(t) * w); })(ext);
  check_close(gl, {-3, 3}, Shape{2});  // w - softmax * sum(w)
  const Tensor gl2 = grad([&](const Tensor& t) { return sum(log_softmax(t) * w); })(Tensor({-kInf, 5.f}, Shape{2}));
  check_close(gl2, {2, -2}, Shape{2});
}

TEST_CASE("softmax and log_softmax gradients match finite differences on first, middle and last axes") {
  for (const Shape& s : {Shape{2, 3, 4}, Shape{3, 2, 5}}) {
    const Tensor x = pattern(s, -2.0f, 2.0f);
    for (int axis : {0, 1, 2, -1}) {
      INFO("shape " << s << " axis " << axis);
      check_gradient([axis](const Tensor& t) { return readout(softmax(t, axis)); }, x);
      check_gradient([axis](const Tensor& t) { return readout(log_softmax(t, axis)); }, x);
    }
  }
  // The tiled path with a partial tile (70 rows along axis 0), on a cheap read-out.
  const Tensor x = pattern(Shape{3, 70}, -2.0f, 2.0f);
  check_gradient([](const Tensor& t) { return readout(softmax(t, 0)); }, x);
  check_gradient([](const Tensor& t) { return readout(log_softmax(t, 0)); }, x);
  // Cross-entropy closed form: d/dx -sum(onehot * log_softmax(x)) = softmax(x) - onehot.
  const Tensor logits = pattern(Shape{2, 3});
  const Tensor labels = one_hot(Tensor(std::vector<std::int32_t>{2, 0}, Shape{2}), 3);
  const Tensor g = grad([&](const Tensor& t) { return -sum(labels * log_softmax(t)); })(logits);
  check_close(g, softmax(logits) - labels, 1e-6f);
}

TEST_CASE("softmax and log_softmax errors") {
  check_throws_with<DTypeError>([] { (void)softmax(arange(3, DType::int32)); }, {"weft::softmax", "float32", "int32"});
  check_throws_with<DTypeError>([] { (void)log_softmax(arange(3, DType::int32)); }, {"weft::log_softmax", "float32"});
  check_throws_with<ShapeError>([] { (void)softmax(ones(Shape{2, 3}), 2); }, {"weft::softmax", "axis 2", "rank 2"});
  check_throws_with<ShapeError>([] { (void)log_softmax(Tensor(1.0f)); }, {"weft::log_softmax", "rank 0"});
  CHECK(softmax(zeros(Shape{0, 3})).shape() == Shape{0, 3});
  CHECK(log_softmax(zeros(Shape{2, 0})).shape() == Shape{2, 0});
}

// ---------------------------------------------------------------- determinism

TEST_CASE("reductions and softmax are bit-identical on 1 and 2 threads") {
  const Tensor flat = pattern(Shape{600000}, -1.0f, 1.0f);        // blocked parallel sum
  const Tensor rows = pattern(Shape{512, 1000}, -5.0f, 5.0f, 3);  // parallel over rows
  const Tensor cols = transpose(rows);                          // (1000, 512): tiled along axis 0
  auto run = [&] {
    return std::vector<Tensor>{sum(flat),           sum(rows, 1),         sum(cols, 0),
                               softmax(rows),       softmax(cols, 0),     log_softmax(rows),
                               log_softmax(cols, 0), logsumexp(rows, 1),  max(flat),
                               var(rows, 1)};
  };
  check_same_on_1_and_2_threads(run);
  // And the gradients of softmax and log_softmax.
  auto grads = [&] {
    return std::vector<Tensor>{grad([](const Tensor& t) { return readout(softmax(t)); })(rows),
                               grad([](const Tensor& t) { return readout(log_softmax(t, 0)); })(cols)};
  };
  check_same_on_1_and_2_threads(grads);
}
