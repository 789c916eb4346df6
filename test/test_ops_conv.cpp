// conv2d, max_pool and avg_pool: hand-computed cases, Flax's tests, a direct reference
// implementation over many option combinations, finite-difference gradients, and bad inputs.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "../src/ops/conv_impl.hpp"
#include "testing.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

using Pads = std::vector<std::pair<std::int64_t, std::int64_t>>;

// XLA's SAME padding, written out again so that the reference does not share the library's code.
std::pair<std::int64_t, std::int64_t> xla_same(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t d) {
  const std::int64_t eff = (k - 1) * d + 1, out = (in + s - 1) / s;
  const std::int64_t total = std::max<std::int64_t>((out - 1) * s + eff - in, 0);
  return {total / 2, total - total / 2};
}

Pads reference_pads(const Padding& p, std::int64_t h, std::int64_t w, std::int64_t kh, std::int64_t kw,
                    const std::vector<std::int64_t>& s, const std::vector<std::int64_t>& d) {
  if (p.is_same()) return {xla_same(h, kh, s[0], d[0]), xla_same(w, kw, s[1], d[1])};
  if (p.is_valid()) return {{0, 0}, {0, 0}};
  return p.pairs();
}

/// Direct convolution (7 nested loops) and its two gradients for an output gradient dy.
struct ReferenceConv {
  Tensor y, dx, dk;
};

ReferenceConv reference_conv(const Tensor& x, const Tensor& k, const Conv2dOptions& o, const Tensor& dy_in = {}) {
  const Shape& xs = x.shape();
  const Shape& ks = k.shape();
  const std::int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3];
  const std::int64_t KH = ks[0], KW = ks[1], I = ks[2], O = ks[3];
  const std::int64_t G = o.feature_group_count, Og = O / G;
  const auto pads = reference_pads(o.padding, H, W, KH, KW, o.strides, o.dilation);
  const std::int64_t sh = o.strides[0], sw = o.strides[1], dh = o.dilation[0], dw = o.dilation[1];
  const std::int64_t OH = (H + pads[0].first + pads[0].second - ((KH - 1) * dh + 1)) / sh + 1;
  const std::int64_t OW = (W + pads[1].first + pads[1].second - ((KW - 1) * dw + 1)) / sw + 1;
  const auto xv = x.to_vector(), kv = k.to_vector();
  const Shape ys{N, OH, OW, O};
  const auto gv = dy_in.defined() ? dy_in.to_vector() : std::vector<float>(static_cast<std::size_t>(ys.numel()), 0.f);
  std::vector<double> y(static_cast<std::size_t>(ys.numel())), dx(xv.size()), dk(kv.size());
  auto xi = [&](auto n, auto h, auto w, auto c) { return static_cast<std::size_t>(((n * H + h) * W + w) * C + c); };
  auto ki = [&](auto h, auto w, auto i, auto oc) { return static_cast<std::size_t>(((h * KW + w) * I + i) * O + oc); };
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t oh = 0; oh < OH; ++oh)
      for (std::int64_t ow = 0; ow < OW; ++ow)
        for (std::int64_t oc = 0; oc < O; ++oc) {
          const std::int64_t g = oc / Og;
          const auto yi = static_cast<std::size_t>(((n * OH + oh) * OW + ow) * O + oc);
          for (std::int64_t kh = 0; kh < KH; ++kh)
            for (std::int64_t kw = 0; kw < KW; ++kw)
              for (std::int64_t i = 0; i < I; ++i) {
                const std::int64_t ih = oh * sh - pads[0].first + kh * dh, iw = ow * sw - pads[1].first + kw * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const auto a = xi(n, ih, iw, g * I + i), b = ki(kh, kw, i, oc);
                y[yi] += static_cast<double>(xv[a]) * kv[b];
                dx[a] += static_cast<double>(gv[yi]) * kv[b];
                dk[b] += static_cast<double>(gv[yi]) * xv[a];
              }
        }
  auto to_tensor = [](const std::vector<double>& v, const Shape& s) {
    return Tensor(std::vector<float>(v.begin(), v.end()), s);
  };
  return {to_tensor(y, ys), to_tensor(dx, xs), to_tensor(dk, ks)};
}

/// Direct pooling; for max, the gradient goes to the first maximal element of each window.
struct ReferencePool {
  Tensor y, dx;
};

ReferencePool reference_pool(const Tensor& x, const PoolOptions& o, bool is_max, const Tensor& dy_in = {}) {
  const Shape& xs = x.shape();
  const std::int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3];
  const std::int64_t KH = o.window[0], KW = o.window[1];
  const std::vector<std::int64_t> s = o.strides.empty() ? std::vector<std::int64_t>{1, 1} : o.strides;
  const auto pads = reference_pads(o.padding, H, W, KH, KW, s, {1, 1});
  const std::int64_t OH = (H + pads[0].first + pads[0].second - KH) / s[0] + 1;
  const std::int64_t OW = (W + pads[1].first + pads[1].second - KW) / s[1] + 1;
  const auto xv = x.to_vector();
  const Shape ys{N, OH, OW, C};
  const auto gv = dy_in.defined() ? dy_in.to_vector() : std::vector<float>(static_cast<std::size_t>(ys.numel()), 0.f);
  std::vector<float> y(static_cast<std::size_t>(ys.numel()));
  std::vector<double> dx(xv.size());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t oh = 0; oh < OH; ++oh)
      for (std::int64_t ow = 0; ow < OW; ++ow)
        for (std::int64_t c = 0; c < C; ++c) {
          double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
          std::int64_t count = 0;
          std::size_t arg = 0;
          for (std::int64_t kh = 0; kh < KH; ++kh)
            for (std::int64_t kw = 0; kw < KW; ++kw) {
              const std::int64_t ih = oh * s[0] - pads[0].first + kh, iw = ow * s[1] - pads[1].first + kw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const auto a = static_cast<std::size_t>(((n * H + ih) * W + iw) * C + c);
              if (is_max && (count == 0 || xv[a] > acc)) {
                acc = xv[a];
                arg = a;
              } else if (!is_max) {
                acc += xv[a];
              }
              ++count;
            }
          const auto yi = static_cast<std::size_t>(((n * OH + oh) * OW + ow) * C + c);
          const double div = o.count_include_pad ? static_cast<double>(KH * KW) : static_cast<double>(count);
          y[yi] = static_cast<float>(is_max ? acc : acc / div);
          if (is_max) {
            if (count > 0) dx[arg] += gv[yi];
          } else {
            for (std::int64_t kh = 0; kh < KH; ++kh)
              for (std::int64_t kw = 0; kw < KW; ++kw) {
                const std::int64_t ih = oh * s[0] - pads[0].first + kh, iw = ow * s[1] - pads[1].first + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                dx[static_cast<std::size_t>(((n * H + ih) * W + iw) * C + c)] += gv[yi] / div;
              }
          }
        }
  return {Tensor(y, ys), Tensor(std::vector<float>(dx.begin(), dx.end()), xs)};
}

/// The gradients of sum(f(x, k) * weights) with respect to x and k, in one backward pass.
std::vector<Tensor> conv_grads(const Tensor& x, const Tensor& k, const Conv2dOptions& o, const Tensor& weights) {
  return grad([&](const std::vector<Tensor>& xk) { return sum(conv2d(xk[0], xk[1], o) * weights); })(
      std::vector<Tensor>{x, k});
}

std::string describe(const Conv2dOptions& o) {
  return "strides (" + std::to_string(o.strides[0]) + ", " + std::to_string(o.strides[1]) + ") padding " +
         o.padding.str() + " dilation (" + std::to_string(o.dilation[0]) + ", " + std::to_string(o.dilation[1]) +
         ") groups " + std::to_string(o.feature_group_count);
}

Tensor from_vector(std::vector<float> v, Shape s) { return Tensor(std::move(v), s); }

}  // namespace

// ---------------------------------------------------------------- padding

TEST_CASE("Padding resolves SAME and VALID as XLA does") {
  const Padding same = "SAME";
  CHECK(same.is_same());
  CHECK(same.str() == "SAME");
  // out = ceil(in / stride); total = max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0); odd on the high side.
  CHECK(same.resolve({5}, {3}, {2}, {1}, "test") == Pads{{1, 1}});
  CHECK(same.resolve({4}, {3}, {2}, {1}, "test") == Pads{{0, 1}});
  CHECK(same.resolve({7}, {3}, {1}, {2}, "test") == Pads{{2, 2}});
  CHECK(same.resolve({5}, {1}, {2}, {1}, "test") == Pads{{0, 0}});
  CHECK(same.resolve({1}, {5}, {1}, {1}, "test") == Pads{{2, 2}});
  CHECK(same.resolve({6, 5}, {2, 4}, {1, 3}, {1, 1}, "test") == Pads{{0, 1}, {1, 1}});
  CHECK(Padding("same").is_same());  // any case, as lax.padtype_to_pads
  const Padding valid = "VALID";
  CHECK(valid.is_valid());
  CHECK(valid.str() == "VALID");
  CHECK(valid.resolve({5, 9}, {3, 3}, {2, 2}, {1, 1}, "test") == Pads{{0, 0}, {0, 0}});
  const Padding pairs = {{1, 2}, {0, 3}};
  CHECK_FALSE(pairs.is_same());
  CHECK_FALSE(pairs.is_valid());
  CHECK(pairs.str() == "((1, 2), (0, 3))");
  CHECK(pairs.resolve({5, 9}, {3, 3}, {2, 2}, {1, 1}, "test") == Pads{{1, 2}, {0, 3}});
  CHECK(Padding(Pads{{4, 0}}).str() == "((4, 0),)");
}

TEST_CASE("Padding: SAME with strides and extents near INT64_MAX, and dilations that overflow") {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const Padding same = "SAME";
  // One output per axis; the total pad is max(window - in, 0), without computing in + stride - 1.
  CHECK(same.resolve({5}, {3}, {kMax}, {1}, "test") == Pads{{0, 0}});
  CHECK(same.resolve({2}, {3}, {kMax}, {1}, "test") == Pads{{0, 1}});
  CHECK(same.resolve({0}, {3}, {kMax}, {1}, "test") == Pads{{0, 0}});
  CHECK(same.resolve({kMax}, {3}, {kMax}, {1}, "test") == Pads{{0, 0}});
  CHECK(same.resolve({kMax}, {3}, {1}, {1}, "test") == Pads{{1, 1}});
  CHECK(same.resolve({5}, {1}, {1}, {kMax}, "test") == Pads{{0, 0}});  // a 1-wide window ignores dilation
  CHECK(same.resolve({5}, {2}, {1}, {1LL << 62}, "test") == Pads{{1LL << 61, 1LL << 61}});
  check_throws_with<ValueError>([&] { (void)same.resolve({5}, {3}, {1}, {1LL << 62}, "conv2d"); },
                                {"weft::conv2d", "a window of 3 with dilation 4611686018427387904", "2^63 - 1"});
  check_throws_with<ValueError>([&] { (void)Padding("VALID").resolve({5}, {2}, {1}, {kMax}, "conv2d"); },
                                {"a window of 2 with dilation 9223372036854775807"});
}

TEST_CASE("Padding rejects unknown modes, wrong pair counts and negative pads") {
  check_throws_with<ValueError>([] { (void)Padding("FULL"); }, {"Padding", "\"FULL\"", "SAME", "VALID", "pairs"});
  check_throws_with<ValueError>([] { (void)Padding(std::string("CIRCULAR")); }, {"CIRCULAR"});
  const Padding three = {{1, 1}, {1, 1}, {1, 1}};
  check_throws_with<ValueError>([&] { (void)three.resolve({5, 5}, {3, 3}, {1, 1}, {1, 1}, "conv2d"); },
                                {"weft::conv2d", "3 (low, high) pairs", "2 spatial axes"});
  const Padding negative = {{-1, 0}, {0, 0}};
  check_throws_with<ValueError>([&] { (void)negative.resolve({5, 5}, {3, 3}, {1, 1}, {1, 1}, "conv2d"); },
                                {"weft::conv2d", "((-1, 0), (0, 0))", "negative", "slice"});
}

// ---------------------------------------------------------------- conv2d values

TEST_CASE("conv2d: Flax's test_conv in 2-D (VALID 3x3 kernel of ones on ones)") {
  const Tensor x = ones(Shape{1, 8, 8, 3});
  const Tensor k = ones(Shape{3, 3, 3, 4});
  const Tensor y = conv2d(x, k, {.padding = "VALID"});
  // 3 x 3 window x 3 input channels; Flax's bias (ones) is added outside the convolution.
  check_close(y, std::vector<float>(6 * 6 * 4, 27.f), Shape{1, 6, 6, 4});
  check_close(y + ones(Shape{4}), std::vector<float>(6 * 6 * 4, 28.f), Shape{1, 6, 6, 4});
  // SAME (the default) keeps 8 x 8; the border windows see fewer ones.
  const Tensor ys = conv2d(x, k);
  REQUIRE(ys.shape() == Shape{1, 8, 8, 4});
  const auto v = ys.to_vector();
  CHECK(v[0] == 12.f);                       // corner: 2 x 2 x 3
  CHECK(v[(0 * 8 + 3) * 4] == 18.f);         // edge: 2 x 3 x 3
  CHECK(v[(3 * 8 + 3) * 4 + 2] == 27.f);     // inside
}

TEST_CASE("conv2d: Flax's test_group_conv (feature_group_count 2)") {
  // Kernel (3, 3, 2, 4) on 4 input channels: outputs 0-1 see channels 0-1, outputs 2-3 channels 2-3.
  const Tensor ones_y = conv2d(ones(Shape{1, 8, 8, 4}), ones(Shape{3, 3, 2, 4}),
                               {.padding = "VALID", .feature_group_count = 2});
  check_close(ones_y, std::vector<float>(6 * 6 * 4, 18.f), Shape{1, 6, 6, 4});
  // Channel c holds c + 1; kernel[kh, kw, i, o] = (i + 1) * (o + 1).
  std::vector<float> xv, kv;
  for (int p = 0; p < 5 * 5; ++p)
    for (int c = 0; c < 4; ++c) xv.push_back(static_cast<float>(c + 1));
  for (int p = 0; p < 9; ++p)
    for (int i = 0; i < 2; ++i)
      for (int o = 0; o < 4; ++o) kv.push_back(static_cast<float>((i + 1) * (o + 1)));
  const Tensor y = conv2d(from_vector(xv, Shape{1, 5, 5, 4}), from_vector(kv, Shape{3, 3, 2, 4}),
                          {.padding = "VALID", .feature_group_count = 2});
  // o=0: 9 (1*1 + 2*2); o=1: 9 (1*2 + 2*4); o=2: 9 (3*3 + 4*6); o=3: 9 (3*4 + 4*8).
  std::vector<float> expected;
  for (int p = 0; p < 9; ++p) expected.insert(expected.end(), {45.f, 90.f, 297.f, 396.f});
  check_close(y, expected, Shape{1, 3, 3, 4});
}

TEST_CASE("conv2d: stride 2 with SAME padding, by hand") {
  // x[r][c] = 4r + c + 1 on 4 x 4; SAME with stride 2 and a 3 x 3 kernel pads (0, 1) on each axis.
  const Tensor x = reshape(arange(1, 17), Shape{1, 4, 4, 1});
  const Conv2dOptions o{.strides = {2, 2}, .padding = "SAME"};
  check_close(conv2d(x, ones(Shape{3, 3, 1, 1}), o), {54, 45, 72, 54}, Shape{1, 2, 2, 1});
  // A kernel with a single 1 at (0, 0) picks the window's top-left input: no flip (cross-correlation).
  std::vector<float> corner(9, 0.f);
  corner[0] = 1.f;
  check_close(conv2d(x, from_vector(corner, Shape{3, 3, 1, 1}), o), {1, 3, 9, 11}, Shape{1, 2, 2, 1});
  std::vector<float> last(9, 0.f);
  last[8] = 1.f;  // bottom-right: x[2r + 2][2c + 2], zero in the padding
  check_close(conv2d(x, from_vector(last, Shape{3, 3, 1, 1}), o), {11, 0, 0, 0}, Shape{1, 2, 2, 1});
}

TEST_CASE("conv2d: kernel dilation 2") {
  // x[r][c] = 5r + c on 5 x 5; kernel [[1, 2], [3, 4]] dilated to 3 x 3, VALID gives 3 x 3:
  // y = x[i][j] + 2 x[i][j+2] + 3 x[i+2][j] + 4 x[i+2][j+2] = 10 (5i + j) + 82.
  const Tensor x = reshape(arange(25), Shape{1, 5, 5, 1});
  const Tensor k({1.f, 2.f, 3.f, 4.f}, Shape{2, 2, 1, 1});
  std::vector<float> expected;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) expected.push_back(static_cast<float>(10 * (5 * i + j) + 82));
  check_close(conv2d(x, k, {.padding = "VALID", .dilation = {2, 2}}), expected, Shape{1, 3, 3, 1});
  // SAME with dilation pads the dilated extent: (1, 1) per axis, output 5 x 5.
  CHECK(conv2d(x, k, {.dilation = {2, 2}}).shape() == Shape{1, 5, 5, 1});
}

TEST_CASE("conv2d: explicit asymmetric padding") {
  // Ones 3 x 3, pads ((1, 0), (0, 2)), 2 x 2 kernel of ones: each output counts the window's
  // positions inside the input (rows: 1, 2, 2; columns: 2, 2, 1, 0).
  const Tensor y = conv2d(ones(Shape{1, 3, 3, 1}), ones(Shape{2, 2, 1, 1}), {.padding = {{1, 0}, {0, 2}}});
  check_close(y, {2, 2, 1, 0, 4, 4, 2, 0, 4, 4, 2, 0}, Shape{1, 3, 4, 1});
}

namespace {

struct KernelCase {
  std::int64_t kh, kw, c, o, groups;
};

/// Calls f(x, k, options) for every kernel, stride, padding and dilation whose window fits a padded
/// input of `batch` 7 x 6 images, with inputs patterned by the case's index; returns how many.
template <class F>
int for_each_conv_case(std::int64_t batch, const std::vector<KernelCase>& kernels,
                       const std::vector<std::vector<std::int64_t>>& strides, const std::vector<Padding>& paddings,
                       const std::vector<std::vector<std::int64_t>>& dilations, F f) {
  int cases = 0;
  for (const auto& kc : kernels)
    for (const auto& s : strides)
      for (const auto& p : paddings)
        for (const auto& d : dilations) {
          const Conv2dOptions o{.strides = s, .padding = p, .dilation = d, .feature_group_count = kc.groups};
          const Tensor x = pattern(Shape{batch, 7, 6, kc.c}, -1.f, 1.f, cases);
          const Tensor k = pattern(Shape{kc.kh, kc.kw, kc.c / kc.groups, kc.o}, -1.f, 1.f, cases + 3);
          const auto pads = reference_pads(p, 7, 6, kc.kh, kc.kw, s, d);
          if ((kc.kh - 1) * d[0] + 1 > 7 + pads[0].first + pads[0].second) continue;
          INFO(describe(o) << " kernel " << k.shape());
          f(x, k, o, pattern(conv2d(x, k, o).shape(), -1.f, 1.f, cases + 5));
          ++cases;
        }
  return cases;
}

/// Each pass of conv2d on each path (im2col and the GEMM, oneDNN's primitives) against the direct
/// convolution; counts in `on_primitives` the passes that ran on the primitives.
void check_both_paths(const Tensor& x, const Tensor& k, const Conv2dOptions& o, const Tensor& dy,
                      const ReferenceConv& ref, float kernel_atol, int& on_primitives) {
  using detail::ConvPath;
  using Pass = backend::ConvPassKind;
  const detail::ConvGeometry g = detail::conv2d_geometry(x.shape(), k.shape(), o);
  for (const ConvPath path : {ConvPath::im2col, ConvPath::primitives}) {
    INFO((path == ConvPath::im2col ? "im2col" : "primitives"));
    check_close(detail::conv2d_forward(x, k, g, path), ref.y, 1e-4f, 1e-4f);
    check_close(detail::conv2d_input_grad(dy, k, g, path), ref.dx, 1e-4f, 1e-4f);
    check_close(detail::conv2d_kernel_grad(x, dy, g, path), ref.dk, kernel_atol, 1e-4f);
    for (const Pass pass : {Pass::forward, Pass::input_grad, Pass::kernel_grad})
      on_primitives += detail::conv2d_path(pass, g, path) == ConvPath::primitives;
  }
}

}  // namespace

TEST_CASE("conv2d matches a direct convolution over many option combinations, values and gradients") {
  const std::vector<KernelCase> kernels = {{3, 3, 2, 4, 1}, {1, 1, 3, 5, 1}, {2, 3, 4, 6, 2}, {3, 2, 6, 3, 3},
                                           {1, 1, 4, 4, 2}, {3, 3, 4, 4, 4}};
  const int compared = for_each_conv_case(
      2, kernels, {{1, 1}, {2, 1}, {2, 3}}, {"SAME", "VALID", {{1, 2}, {0, 1}}, {{0, 0}, {3, 0}}},
      {{1, 1}, {2, 1}, {2, 2}}, [](const Tensor& x, const Tensor& k, const Conv2dOptions& o, const Tensor& dy) {
        const ReferenceConv ref = reference_conv(x, k, o, dy);
        check_close(conv2d(x, k, o), ref.y, 1e-5f, 1e-4f);
        const auto g = conv_grads(x, k, o, dy);
        check_close(g[0], ref.dx, 1e-5f, 1e-4f);
        check_close(g[1], ref.dk, 1e-4f, 1e-4f);
      });
  CHECK(compared > 150);
}

TEST_CASE("conv2d's two paths, im2col and oneDNN's primitives, each match the direct convolution") {
  const std::vector<KernelCase> kernels = {{3, 3, 2, 4, 1}, {1, 1, 16, 5, 1}, {2, 3, 32, 6, 2}, {3, 3, 16, 16, 4}};
  int on_primitives = 0;
  const int compared = for_each_conv_case(
      3, kernels, {{1, 1}, {2, 3}}, {"SAME", "VALID", {{1, 2}, {0, 1}}, {{0, 0}, {3, 0}}}, {{1, 1}, {2, 2}},
      [&](const Tensor& x, const Tensor& k, const Conv2dOptions& o, const Tensor& dy) {
        check_both_paths(x, k, o, dy, reference_conv(x, k, o, dy), 1e-4f, on_primitives);
      });
  CHECK(compared > 50);
  // oneDNN has direct kernels for most of these passes (the rest fall back to im2col): the
  // primitives were compared, not only im2col twice.
  CHECK(2 * on_primitives > 3 * compared);
}

TEST_CASE("conv2d on inputs larger than one work chunk matches the direct convolution") {
  // Enough output pixels that the forward, both gradients and the pointwise path are cut into
  // several chunks, and the kernel gradient adds several partial sums.
  struct Case {
    Shape x, k;
    Conv2dOptions o;
  };
  const std::vector<Case> cases = {
      {Shape{2, 48, 48, 64}, Shape{3, 3, 64, 2}, {}},
      {Shape{3, 30, 30, 16}, Shape{3, 3, 8, 8}, {.strides = {1, 2}, .padding = "VALID", .feature_group_count = 2}},
      {Shape{2, 70, 70, 16}, Shape{1, 1, 16, 3}, {.padding = "VALID"}},
      {Shape{37, 9, 9, 16}, Shape{3, 3, 16, 8}, {}},  // a shorter last chunk of images on the primitives
  };
  int on_primitives = 0;
  for (const auto& c : cases) {
    INFO(describe(c.o) << " input " << c.x << " kernel " << c.k);
    const Tensor x = pattern(c.x, -1.f, 1.f, 1);
    const Tensor k = pattern(c.k, -1.f, 1.f, 2);
    const Tensor y = conv2d(x, k, c.o);
    const Tensor dy = pattern(y.shape(), -1.f, 1.f, 3);
    const ReferenceConv ref = reference_conv(x, k, c.o, dy);
    check_close(y, ref.y, 1e-4f, 1e-4f);
    const auto g = conv_grads(x, k, c.o, dy);
    check_close(g[0], ref.dx, 1e-4f, 1e-4f);
    check_close(g[1], ref.dk, 2e-3f, 1e-4f);  // sums of thousands of products
    check_both_paths(x, k, c.o, dy, ref, 2e-3f, on_primitives);
  }
  CHECK(on_primitives >= 3 * static_cast<int>(cases.size()));
}

TEST_CASE("conv2d gradients agree with finite differences") {
  const std::vector<Conv2dOptions> options = {
      {},
      {.strides = {2, 2}, .padding = "VALID"},
      {.strides = {1, 2}, .padding = {{2, 0}, {1, 1}}, .dilation = {2, 1}, .feature_group_count = 2},
      {.strides = {2, 1}, .padding = "SAME", .dilation = {1, 2}, .feature_group_count = 4},
  };
  for (const auto& o : options) {
    INFO(describe(o));
    const Tensor x = pattern(Shape{2, 5, 6, 4}, -1.f, 1.f, 1);
    const Tensor k = pattern(Shape{3, 2, 4 / o.feature_group_count, 4}, -1.f, 1.f, 2);
    const Tensor w = pattern(conv2d(x, k, o).shape(), -1.f, 1.f, 3);
    check_gradient([&](const Tensor& t) { return sum(conv2d(t, k, o) * w); }, x);
    check_gradient([&](const Tensor& t) { return sum(conv2d(x, t, o) * w); }, k);
  }
  // Through a nonlinearity, both operands tracked at once.
  const Tensor x = pattern(Shape{1, 4, 4, 2}, -1.f, 1.f, 4);
  const Tensor k = pattern(Shape{2, 2, 2, 3}, -1.f, 1.f, 5);
  check_gradient([&](const Tensor& t) { return sum(tanh(conv2d(t, t * 0.5f + 0.25f, {.padding = "VALID"}))); },
                 pattern(Shape{2, 2, 2, 2}, -1.f, 1.f, 6));
  check_gradient([&](const Tensor& t) { return sum(square(conv2d(x, t))); }, k);
}

TEST_CASE("conv2d handles an empty batch and no output channels") {
  const Tensor y = conv2d(zeros(Shape{0, 5, 5, 2}), ones(Shape{3, 3, 2, 3}));
  CHECK(y.shape() == Shape{0, 5, 5, 3});
  const Tensor dk = grad([](const Tensor& k) { return sum(conv2d(zeros(Shape{0, 5, 5, 2}), k)); })(ones(Shape{3, 3, 2, 3}));
  check_close(dk, std::vector<float>(54, 0.f), Shape{3, 3, 2, 3});
  CHECK(conv2d(ones(Shape{1, 5, 5, 2}), ones(Shape{3, 3, 2, 0})).shape() == Shape{1, 5, 5, 0});
}

TEST_CASE("conv2d, pooling and their gradients are bit-identical on one thread and on all") {
  const int threads = omp_get_max_threads();
  const Tensor x = pattern(Shape{4, 20, 20, 16}, -1.f, 1.f, 1);
  const Tensor k = pattern(Shape{3, 3, 16, 32}, -1.f, 1.f, 2);
  auto run = [&] {
    const auto g = grad([&](const std::vector<Tensor>& xk) {
      const Tensor h = conv2d(xk[0], xk[1], {.strides = {1, 1}, .padding = "SAME"});
      return sum(square(max_pool(h, {.window = {2, 2}, .strides = {2, 2}})) +
                 avg_pool(h, {.window = {2, 2}, .strides = {2, 2}, .count_include_pad = false}));
    })(std::vector<Tensor>{x, k});
    return std::vector<std::vector<float>>{conv2d(x, k).to_vector(), g[0].to_vector(), g[1].to_vector()};
  };
  omp_set_num_threads(1);
  const auto one = run();
  omp_set_num_threads(threads);
  const auto all = run();
  CHECK(one == all);
}

// ---------------------------------------------------------------- pooling values

TEST_CASE("max_pool and avg_pool by hand, VALID and SAME") {
  const Tensor x = reshape(arange(1, 17), Shape{1, 4, 4, 1});
  const PoolOptions two{.window = {2, 2}, .strides = {2, 2}};
  check_close(max_pool(x, two), {6, 8, 14, 16}, Shape{1, 2, 2, 1});
  check_close(avg_pool(x, two), {3.5f, 5.5f, 11.5f, 13.5f}, Shape{1, 2, 2, 1});
  // Strides default to 1 (Flax): 2 x 2 windows over 4 x 4 give 3 x 3.
  check_close(max_pool(x), {6, 7, 8, 10, 11, 12, 14, 15, 16}, Shape{1, 3, 3, 1});

  // 3 x 3 windows, SAME, stride 1 on 1..9: pads (1, 1) on each axis.
  const Tensor x3 = reshape(arange(1, 10), Shape{1, 3, 3, 1});
  const PoolOptions same{.window = {3, 3}, .padding = "SAME"};
  check_close(max_pool(x3, same), {5, 6, 6, 8, 9, 9, 8, 9, 9}, Shape{1, 3, 3, 1});
  std::vector<float> sums = {12, 21, 16, 27, 45, 33, 24, 39, 28};
  std::vector<float> full;
  for (float s : sums) full.push_back(s / 9.f);
  check_close(avg_pool(x3, same), full, Shape{1, 3, 3, 1});  // count_include_pad (Flax's default)
  PoolOptions exclude = same;
  exclude.count_include_pad = false;
  check_close(avg_pool(x3, exclude), {3, 3.5f, 4, 4.5f, 5, 5.5f, 6, 6.5f, 7}, Shape{1, 3, 3, 1});

  // max_pool pads with -inf, not 0: an all-negative input keeps its values.
  const Tensor neg({-1.f, -2.f, -3.f, -4.f}, Shape{1, 2, 2, 1});
  check_close(max_pool(neg, {.window = {2, 2}, .padding = "SAME"}), {-1, -2, -3, -4}, Shape{1, 2, 2, 1});
  // Explicit pads: a window entirely in the padding gives -inf for max, and for avg 0 (count_include_pad)
  // or 0 / 0 = NaN (not), as Flax's reduce_window formulation does.
  const Tensor five({5.f}, Shape{1, 1, 1, 1});
  const PoolOptions pad_right{.window = {1, 1}, .padding = {{0, 0}, {0, 1}}};
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  check_close(max_pool(five, pad_right), {5, -inf}, Shape{1, 1, 2, 1});
  check_close(avg_pool(five, pad_right), {5, 0}, Shape{1, 1, 2, 1});
  PoolOptions pad_right_exclude = pad_right;
  pad_right_exclude.count_include_pad = false;
  check_close(avg_pool(five, pad_right_exclude), {5, nan}, Shape{1, 1, 2, 1});
  // NaN propagates through max, as lax.max.
  const Tensor with_nan({1.f, nan, 3.f, 2.f}, Shape{1, 2, 2, 1});
  check_close(max_pool(with_nan, {.window = {2, 2}}), {nan}, Shape{1, 1, 1, 1});
}

TEST_CASE("pooling accepts HWC (no batch axis) as Flax does") {
  const Tensor x = pattern(Shape{5, 6, 3});
  const PoolOptions o{.window = {2, 3}, .strides = {2, 1}, .padding = "SAME"};
  const Tensor y = max_pool(x, o);
  CHECK(y.shape() == Shape{3, 6, 3});
  check_close(y, reshape(max_pool(reshape(x, Shape{1, 5, 6, 3}), o), Shape{3, 6, 3}));
  check_close(avg_pool(x, o), reshape(avg_pool(reshape(x, Shape{1, 5, 6, 3}), o), Shape{3, 6, 3}));
  check_gradient([&](const Tensor& t) { return sum(square(avg_pool(t, o))); }, x);
}

TEST_CASE("pooling matches a direct implementation over many option combinations, values and gradients") {
  const std::vector<std::vector<std::int64_t>> windows = {{2, 2}, {3, 2}, {1, 3}, {3, 3}};
  const std::vector<std::vector<std::int64_t>> strides = {{}, {2, 2}, {1, 2}, {3, 1}};
  const std::vector<Padding> paddings = {"SAME", "VALID", {{1, 0}, {2, 1}}};
  int compared = 0;
  for (const auto& win : windows)
    for (const auto& s : strides)
      for (const auto& p : paddings)
        for (const bool include : {true, false}) {
          const PoolOptions o{.window = win, .strides = s, .padding = p, .count_include_pad = include};
          INFO("window (" << win[0] << ", " << win[1] << ") strides " << s.size() << " padding " << p.str()
                          << " count_include_pad " << include);
          const Tensor x = pattern(Shape{2, 7, 5, 3}, -1.f, 1.f, compared);
          for (const bool is_max : {true, false}) {
            const Tensor y = is_max ? max_pool(x, o) : avg_pool(x, o);
            const Tensor dy = pattern(y.shape(), -1.f, 1.f, compared + 1);
            const ReferencePool ref = reference_pool(x, o, is_max, dy);
            check_close(y, ref.y);
            const Tensor dx = grad([&](const Tensor& t) { return sum((is_max ? max_pool(t, o) : avg_pool(t, o)) * dy); })(x);
            check_close(dx, ref.dx);
          }
          ++compared;
        }
  CHECK(compared == 96);
}

// ---------------------------------------------------------------- pooling gradients

TEST_CASE("pooling gradients agree with finite differences") {
  const std::vector<PoolOptions> options = {
      {.window = {2, 2}, .strides = {2, 2}},
      {.window = {3, 3}, .padding = "SAME"},
      {.window = {3, 2}, .strides = {2, 1}, .padding = {{1, 2}, {0, 1}}, .count_include_pad = false},
      {.window = {2, 3}, .strides = {1, 2}, .padding = "SAME", .count_include_pad = false},
  };
  for (const auto& o : options) {
    INFO("window (" << o.window[0] << ", " << o.window[1] << ") padding " << o.padding.str());
    // Distinct values at least 1e-2 apart, so a step of 1e-3 never changes a window's maximum.
    const Tensor x = pattern(Shape{2, 5, 6, 2}, -1.f, 1.f, 1);
    const Tensor w = pattern(max_pool(x, o).shape(), 0.5f, 1.5f, 2);
    check_gradient([&](const Tensor& t) { return sum(max_pool(t, o) * w); }, x, 1e-3f);
    check_gradient([&](const Tensor& t) { return sum(avg_pool(t, o) * w); }, x);
  }
}

TEST_CASE("max_pool's gradient goes to the first maximal element of each window") {
  // All ties: each 2 x 2 window (stride 1) sends its gradient to its top-left element.
  const Tensor dx = grad([](const Tensor& t) { return sum(max_pool(t)); })(ones(Shape{1, 4, 4, 1}));
  check_close(dx, {1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0}, Shape{1, 4, 4, 1});
  // Ties at the maximum only: the first in row-major window order wins, per channel
  // (channel 0 holds 0, 1, 1, 1 and channel 1 holds 3, 1, 3, 2).
  const Tensor x({0.f, 3.f, 1.f, 1.f, 1.f, 3.f, 1.f, 2.f}, Shape{1, 2, 2, 2});
  check_close(grad([](const Tensor& t) { return sum(max_pool(t, {.window = {2, 2}})); })(x), {0, 1, 1, 0, 0, 0, 0, 0},
              Shape{1, 2, 2, 2});
  // avg_pool spreads g / window size, or g / (positions inside) without count_include_pad.
  const PoolOptions same3{.window = {3, 3}, .padding = "SAME", .count_include_pad = false};
  const Tensor da = grad([&](const Tensor& t) { return sum(avg_pool(t, same3)); })(ones(Shape{1, 2, 2, 1}));
  check_close(da, {1, 1, 1, 1}, Shape{1, 2, 2, 1});  // every window holds all 4 inputs: 4 x 1/4
}

// ---------------------------------------------------------------- errors

TEST_CASE("conv2d errors name the op, the shapes and the fix") {
  const Tensor x = ones(Shape{1, 8, 8, 3});
  const Tensor k = ones(Shape{3, 3, 3, 4});
  check_throws_with<ShapeError>([&] { (void)conv2d(ones(Shape{8, 8, 3}), k); }, {"weft::conv2d", "NHWC", "(8, 8, 3)", "reshape"});
  check_throws_with<ShapeError>([&] { (void)conv2d(x, ones(Shape{3, 3, 4})); }, {"weft::conv2d", "HWIO", "(3, 3, 4)"});
  check_throws_with<ShapeError>([&] { (void)conv2d(x, ones(Shape{3, 3, 2, 4})); },
                                {"weft::conv2d", "(1, 8, 8, 3)", "(3, 3, 2, 4)", "C = 3", "feature_group_count"});
  check_throws_with<ShapeError>([&] { (void)conv2d(ones(Shape{1, 8, 8, 4}), ones(Shape{3, 3, 2, 5}), {.feature_group_count = 2}); },
                                {"weft::conv2d", "(3, 3, 2, 5)", "O = 5", "not a multiple", "feature_group_count 2"});
  check_throws_with<ShapeError>([&] { (void)conv2d(x, ones(Shape{3, 3, 1, 4}), {.feature_group_count = 2}); },
                                {"weft::conv2d", "C = 3", "not a multiple of feature_group_count 2"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.feature_group_count = 0}); },
                                {"weft::conv2d", "feature_group_count", ">= 1"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.strides = {0, 1}}); }, {"weft::conv2d", "strides (0, 1)", "positive"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.strides = {-2, 1}}); }, {"weft::conv2d", "strides", "positive"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.strides = {1, 1, 1}}); },
                                {"weft::conv2d", "strides (1, 1, 1)", "3 entries", "2 spatial axes"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.dilation = {1, 0}}); }, {"weft::conv2d", "dilation (1, 0)", "positive"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.dilation = {2}}); }, {"weft::conv2d", "dilation", "1 entries"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.padding = {{1, 1}}}); }, {"weft::conv2d", "padding", "1 (low, high) pairs"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.padding = {{1, 1}, {0, -1}}}); }, {"weft::conv2d", "negative"});
  check_throws_with<ShapeError>([&] { (void)conv2d(ones(Shape{1, 2, 2, 3}), k, {.padding = "VALID"}); },
                                {"weft::conv2d", "window (3, 3)", "larger than the padded input (2, 2)", "(1, 2, 2, 3)", "SAME"});
  check_throws_with<ShapeError>([&] { (void)conv2d(ones(Shape{1, 4, 4, 3}), k, {.padding = "VALID", .dilation = {2, 1}}); },
                                {"weft::conv2d", "window (5, 3)", "dilation (2, 1)", "padded input (4, 4)"});
  check_throws_with<ShapeError>([&] { (void)conv2d(x, ones(Shape{0, 3, 3, 4})); }, {"weft::conv2d", "empty spatial extent"});
  check_throws_with<DTypeError>([&] { (void)conv2d(arange(64 * 3, DType::int32), k); }, {"conv2d"});
  // Options near 2^62 fail with their own numbers, before any overflow.
  check_throws_with<ShapeError>([&] { (void)conv2d(ones(Shape{1, 8, 8, 0}), ones(Shape{3, 3, 4, 0}), {.feature_group_count = 1LL << 62}); },
                                {"weft::conv2d", "I * feature_group_count = 4 * 4611686018427387904 = more than 2^63 - 1"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.dilation = {1LL << 62, 1}}); },
                                {"weft::conv2d", "a window of 3 with dilation 4611686018427387904", "2^63 - 1"});
  check_throws_with<ValueError>([&] { (void)conv2d(x, k, {.padding = {{1LL << 62, 1LL << 62}, {0, 0}}}); },
                                {"weft::conv2d", "(4611686018427387904, 4611686018427387904)", "(1, 8, 8, 3)",
                                 "padded extent of more than 2^63 - 1"});
  check_throws_with<ShapeError>(
      [&] { (void)conv2d(x, k, {.padding = {{1LL << 61, 1LL << 61}, {1LL << 61, 1LL << 61}}}); },
      {"weft::conv2d", "1 x 4611686018427387910 x 4611686018427387910 pixels", "2^63 - 1"});
  check_throws_with<Error>([&] { (void)conv2d(Tensor(), k); }, {"conv2d"});
}

TEST_CASE("pooling errors name the op, the shapes and the fix") {
  const Tensor x = ones(Shape{1, 4, 4, 2});
  check_throws_with<ShapeError>([&] { (void)max_pool(ones(Shape{4, 4})); }, {"weft::max_pool", "NHWC", "(4, 4)"});
  check_throws_with<ShapeError>([&] { (void)avg_pool(ones(Shape{1, 1, 4, 4, 2})); }, {"weft::avg_pool", "rank 4"});
  check_throws_with<ValueError>([&] { (void)max_pool(x, {.window = {2, 2, 2}}); }, {"weft::max_pool", "window (2, 2, 2)", "two"});
  check_throws_with<ValueError>([&] { (void)avg_pool(x, {.window = {0, 2}}); }, {"weft::avg_pool", "window (0, 2)", "positive"});
  check_throws_with<ValueError>([&] { (void)max_pool(x, {.strides = {2, 0}}); }, {"weft::max_pool", "strides (2, 0)", "positive"});
  check_throws_with<ValueError>([&] { (void)max_pool(x, {.strides = {2}}); }, {"weft::max_pool", "strides (2,)", "2 spatial axes"});
  check_throws_with<ValueError>([&] { (void)avg_pool(x, {.padding = {{0, 0}, {1, 1}, {0, 0}}}); },
                                {"weft::avg_pool", "3 (low, high) pairs"});
  check_throws_with<ValueError>([&] { (void)avg_pool(x, {.padding = {{0, -1}, {1, 1}}}); }, {"weft::avg_pool", "negative"});
  check_throws_with<ShapeError>([&] { (void)avg_pool(x, {.window = {5, 2}}); },
                                {"weft::avg_pool", "window (5, 2)", "larger than the padded input (4, 4)", "(1, 4, 4, 2)"});
  check_throws_with<DTypeError>([&] { (void)max_pool(arange(32, DType::int32)); }, {"max_pool"});
  check_throws_with<ShapeError>([&] { (void)avg_pool(x, {.padding = {{1LL << 61, 1LL << 61}, {1LL << 61, 1LL << 61}}}); },
                                {"weft::avg_pool", "pixels", "2^63 - 1"});
  check_throws_with<ValueError>([&] { (void)max_pool(x, {.padding = {{0, 0}, {1LL << 62, 1LL << 62}}}); },
                                {"weft::max_pool", "padded extent"});
}

TEST_CASE("conv2d and pooling with SAME padding and a stride of INT64_MAX give one output per axis") {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  // SAME pads max(3 - 5, 0) = 0: the one output is the top-left 3x3 window, 27 ones per channel.
  const Tensor y = conv2d(ones(Shape{1, 5, 5, 3}), ones(Shape{3, 3, 3, 4}), {.strides = {kMax, kMax}});
  check_close(y, {27, 27, 27, 27}, Shape{1, 1, 1, 4});
  const Tensor x = reshape(arange(25), {1, 5, 5, 1});
  check_close(max_pool(x, {.window = {2, 2}, .strides = {kMax, kMax}, .padding = "SAME"}), {6}, Shape{1, 1, 1, 1});
  check_close(avg_pool(x, {.window = {2, 2}, .strides = {kMax, kMax}, .padding = "SAME"}), {3}, Shape{1, 1, 1, 1});
}
