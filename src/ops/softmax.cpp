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

void softmax_forward_into(const float* px, float* py, const AxisView& v) {
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
}

void log_softmax_forward_into(const float* px, float* py, const AxisView& v) {
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
}

/// The shape both backward passes share: r = sum over the axis of term(g, y), then
/// dx = out(g, y, r) for each element.
template <class Term, class Out>
void reduce_then_map(const float* pg, const float* py, float* pd, const AxisView& v, Term term, Out out) {
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
}

/// softmax: dx = y * (g - sum(g * y)) along the axis.
void softmax_backward_into(const float* pg, const float* py, float* pd, const AxisView& v) {
  reduce_then_map(
      pg, py, pd, v, [](float gi, float yi) { return gi * yi; },
      [](float gi, float yi, float dot) { return yi * (gi - dot); });
}

/// log_softmax: dx = g - exp(y) * sum(g) along the axis (exp(y) is the softmax).
void log_softmax_backward_into(const float* pg, const float* py, float* pd, const AxisView& v) {
  reduce_then_map(
      pg, py, pd, v, [](float gi, float) { return gi; },
      [](float gi, float yi, float sg) { return gi - exp_nonpositive(yi) * sg; });
}

using Forward = void (*)(const float*, float*, const AxisView&);
using Backward = void (*)(const float*, const float*, float*, const AxisView&);

/// The gradient op of softmax or log_softmax (`backward`) over g and the op's output y: a kernel in
/// weft::jit plans.
Tensor softmax_grad(const char* op, Backward backward, const Tensor& g, const Tensor& y, const AxisView& v) {
  return detail::traced_lowered(
      op,
      [backward, v](const Tensor& g, const Tensor& y) {
        Tensor dx = detail::empty(y.shape(), DType::float32);
        backward(data<float>(g), data<float>(y), detail::mutable_data<float>(dx), v);
        return dx;
      },
      [backward, v](const Tensor&, const Tensor&, const Tensor&) {
        return detail::JitKernel{[backward, v](const void* const* in, void* const* out) {
          backward(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]), static_cast<float*>(out[0]), v);
        }};
      },
      g, y);
}

/// softmax or log_softmax (`forward`, gradient `backward`) of x along `axis`: a kernel in weft::jit
/// plans, as its gradient.
Tensor softmax_op(const Tensor& x, int axis, const char* op, const char* grad_op, Forward forward, Backward backward) {
  const auto lower = [op, axis, forward](const Tensor& x, const Tensor&) {
    const AxisView v = detail::axis_view(x.shape(), normalize_axis(axis, x.rank(), op));
    return detail::JitKernel{[forward, v](const void* const* in, void* const* out) {
      forward(static_cast<const float*>(in[0]), static_cast<float*>(out[0]), v);
    }};
  };
  return detail::traced_lowered(op, [=](const Tensor& x) -> Tensor {
    detail::require_float(x, op);
    const AxisView v = detail::axis_view(x.shape(), normalize_axis(axis, x.rank(), op));
    Tensor out = detail::empty(x.shape(), DType::float32);
    forward(data<float>(x), detail::mutable_data<float>(out), v);
    if (autodiff::any_tracked(x)) {
      // The gradient is an op of its own over g and the output, which a weft::jit trace records.
      autodiff::record_ops(out, op, {&x}, [y = detach(out), v, grad_op, backward](const Tensor& g,
                                                                                   std::span<Tensor> gr) {
        gr[0] = softmax_grad(grad_op, backward, g, y, v);
      });
    }
    return out;
  }, lower, x);
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) {
  return softmax_op(x, axis, "softmax", "softmax_grad", softmax_forward_into, softmax_backward_into);
}

Tensor log_softmax(const Tensor& x, int axis) {
  return softmax_op(x, axis, "log_softmax", "log_softmax_grad", log_softmax_forward_into, log_softmax_backward_into);
}

}  // namespace weft
