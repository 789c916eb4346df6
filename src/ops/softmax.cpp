// softmax and log_softmax along one axis: fused, numerically stable kernels and their fused backward.
//
// Each row (the elements along the axis) takes three passes: its maximum, exp(x - max) and its
// sum, then the output. Along the last axis a row is contiguous and summed in kLanes independent
// partial sums (vectorised, combined in a fixed order); along any other axis a task handles a
// tile of up to kTile neighbouring rows at once, vectorised across them. Rows are spread over
// threads in chunks that depend only on the shape, so results are bit-identical on any thread count.
#include <cmath>
#include <cstdint>

#include "../jit/trace.hpp"
#include "internal.hpp"
#include "../row_math.hpp"

namespace weft {

using detail::AxisView;
using detail::data;
using detail::detach;
using detail::exp_nonpositive;
using detail::lanes_accumulate;
using detail::max_nan;

namespace {

constexpr std::int64_t kTile = 64;  // neighbouring rows handled together along a non-last axis

/// Runs row(offset) for each contiguous row of a last-axis view, or cols(offset, width) for each
/// tile of up to kTile rows (stride v.inner) along another axis.
template <class Row, class Cols>
void for_each_row(const AxisView& v, Row row, Cols cols) {
  if (v.outer * v.n * v.inner == 0) return;
  if (v.inner == 1) {
    detail::parallel_for(v.outer, std::max<std::int64_t>(1, detail::kParallelGrain / v.n),
                         [&](std::int64_t o0, std::int64_t o1) {
                           for (std::int64_t o = o0; o < o1; ++o) row(o * v.n);
                         });
    return;
  }
  const std::int64_t tiles = (v.inner + kTile - 1) / kTile;
  const std::int64_t width = std::min(v.inner, kTile);
  detail::parallel_for(v.outer * tiles, std::max<std::int64_t>(1, detail::kParallelGrain / (v.n * width)),
                       [&](std::int64_t t0, std::int64_t t1) {
                         for (std::int64_t t = t0; t < t1; ++t) {
                           const std::int64_t o = t / tiles, i0 = (t % tiles) * kTile;
                           cols(o * v.n * v.inner + i0, std::min(kTile, v.inner - i0));
                         }
                       });
}

/// Column maxima m[0..w) of x[k * stride + i] over k in [0, n).
inline void cols_max(const float* x, std::int64_t n, std::int64_t stride, std::int64_t w, float* m) {
  std::copy_n(x, w, m);
  for (std::int64_t k = 1; k < n; ++k)
    for (std::int64_t i = 0; i < w; ++i) m[i] = max_nan(m[i], x[k * stride + i]);
}

Tensor softmax_forward(const Tensor& x, const AxisView& v) {
  Tensor out = detail::empty(x.shape(), DType::float32);
  const float* px = data<float>(x);
  float* py = detail::mutable_data<float>(out);
  const std::int64_t n = v.n, stride = v.inner;
  for_each_row(
      v,
      [&](std::int64_t off) {
        const float* xr = px + off;
        float* yr = py + off;
        const float m = detail::max_contiguous(xr, n);
        for (std::int64_t i = 0; i < n; ++i) yr[i] = exp_nonpositive(xr[i] - m);
        const float s = lanes_accumulate(n, [yr](std::int64_t i) { return yr[i]; });
        for (std::int64_t i = 0; i < n; ++i) yr[i] /= s;
      },
      [&](std::int64_t off, std::int64_t w) {
        const float* xr = px + off;
        float* yr = py + off;
        float m[kTile], s[kTile] = {};
        cols_max(xr, n, stride, w, m);
        for (std::int64_t k = 0; k < n; ++k)
          for (std::int64_t i = 0; i < w; ++i) s[i] += yr[k * stride + i] = exp_nonpositive(xr[k * stride + i] - m[i]);
        for (std::int64_t k = 0; k < n; ++k)
          for (std::int64_t i = 0; i < w; ++i) yr[k * stride + i] /= s[i];
      });
  return out;
}

Tensor log_softmax_forward(const Tensor& x, const AxisView& v) {
  Tensor out = detail::empty(x.shape(), DType::float32);
  const float* px = data<float>(x);
  float* py = detail::mutable_data<float>(out);
  const std::int64_t n = v.n, stride = v.inner;
  for_each_row(
      v,
      [&](std::int64_t off) {
        const float* xr = px + off;
        float* yr = py + off;
        const float m = detail::max_contiguous(xr, n);
        const float ls = std::log(lanes_accumulate(n, [&](std::int64_t i) { return exp_nonpositive(xr[i] - m); }));
        for (std::int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) - ls;
      },
      [&](std::int64_t off, std::int64_t w) {
        const float* xr = px + off;
        float* yr = py + off;
        float m[kTile], s[kTile] = {};
        cols_max(xr, n, stride, w, m);
        for (std::int64_t k = 0; k < n; ++k)
          for (std::int64_t i = 0; i < w; ++i) s[i] += exp_nonpositive(xr[k * stride + i] - m[i]);
        for (std::int64_t i = 0; i < w; ++i) s[i] = std::log(s[i]);
        for (std::int64_t k = 0; k < n; ++k)
          for (std::int64_t i = 0; i < w; ++i) yr[k * stride + i] = (xr[k * stride + i] - m[i]) - s[i];
      });
  return out;
}

/// The shape both backward passes share: r = sum over the axis of term(g, y), then
/// dx = out(g, y, r) for each element.
template <class Term, class Out>
Tensor reduce_then_map(const Tensor& g, const Tensor& y, const AxisView& v, Term term, Out out) {
  Tensor dx = detail::empty(y.shape(), DType::float32);
  const float* pg = data<float>(g);
  const float* py = data<float>(y);
  float* pd = detail::mutable_data<float>(dx);
  const std::int64_t n = v.n, stride = v.inner;
  for_each_row(
      v,
      [&](std::int64_t off) {
        const float *gr = pg + off, *yr = py + off;
        float* dr = pd + off;
        const float r = lanes_accumulate(n, [&](std::int64_t i) { return term(gr[i], yr[i]); });
        for (std::int64_t i = 0; i < n; ++i) dr[i] = out(gr[i], yr[i], r);
      },
      [&](std::int64_t off, std::int64_t w) {
        const float *gr = pg + off, *yr = py + off;
        float* dr = pd + off;
        float r[kTile] = {};
        for (std::int64_t k = 0; k < n; ++k)
          for (std::int64_t i = 0; i < w; ++i) r[i] += term(gr[k * stride + i], yr[k * stride + i]);
        for (std::int64_t k = 0; k < n; ++k)
          for (std::int64_t i = 0; i < w; ++i)
            dr[k * stride + i] = out(gr[k * stride + i], yr[k * stride + i], r[i]);
      });
  return dx;
}

/// softmax: dx = y * (g - sum(g * y)) along the axis.
Tensor softmax_backward(const Tensor& g, const Tensor& y, const AxisView& v) {
  return reduce_then_map(
      g, y, v, [](float gi, float yi) { return gi * yi; },
      [](float gi, float yi, float dot) { return yi * (gi - dot); });
}

/// log_softmax: dx = g - exp(y) * sum(g) along the axis (exp(y) is the softmax).
Tensor log_softmax_backward(const Tensor& g, const Tensor& y, const AxisView& v) {
  return reduce_then_map(
      g, y, v, [](float gi, float) { return gi; },
      [](float gi, float yi, float sg) { return gi - exp_nonpositive(yi) * sg; });
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) {
  return detail::traced("softmax", [=](const Tensor& x) -> Tensor {
    detail::require_float(x, "softmax");
    const AxisView v = detail::axis_view(x.shape(), normalize_axis(axis, x.rank(), "softmax"));
    Tensor out = softmax_forward(x, v);
    if (autodiff::any_tracked(x)) {
      // The gradient is an op of its own over g and the output, which a weft::jit trace records.
      autodiff::record_ops(out, "softmax", {&x}, [y = detach(out), v](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = detail::traced(
            "softmax_grad", [v](const Tensor& g, const Tensor& y) { return softmax_backward(g, y, v); }, g, y);
      });
    }
    return out;
  }, x);
}

Tensor log_softmax(const Tensor& x, int axis) {
  return detail::traced("log_softmax", [=](const Tensor& x) -> Tensor {
    detail::require_float(x, "log_softmax");
    const AxisView v = detail::axis_view(x.shape(), normalize_axis(axis, x.rank(), "log_softmax"));
    Tensor out = log_softmax_forward(x, v);
    if (autodiff::any_tracked(x)) {
      autodiff::record_ops(out, "log_softmax", {&x}, [y = detach(out), v](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = detail::traced(
            "log_softmax_grad", [v](const Tensor& g, const Tensor& y) { return log_softmax_backward(g, y, v); }, g, y);
      });
    }
    return out;
  }, x);
}

}  // namespace weft
