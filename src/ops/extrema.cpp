// Extrema: max, min and argmax, and logsumexp (which shifts by the maximum), on the shared kernel.
#include <cmath>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft {

using detail::data;
using detail::detach;
using detail::map_binary;

namespace {

Tensor extremum(const Tensor& x, const Axes& axes, bool keepdims, bool is_max) {
  return detail::traced(is_max ? "max" : "min", [=](const Tensor& x) -> Tensor {
    const char* op = is_max ? "max" : "min";
    detail::require_defined(x, op);
    const auto ax = detail::normalize_axes(axes, x.rank(), op);
    Tensor out = detail::reduce_raw(x, ax, keepdims, is_max ? detail::ReduceKind::max : detail::ReduceKind::min);
    if (autodiff::any_tracked(x)) {
      // As JAX: the gradient is shared equally among the positions that attain the extremum.
      // Of ops only (reshape and sum where keep_axes and reduce_raw work outside any op), so that a
      // weft::jit trace records them.
      autodiff::record_ops(out, op, {&x}, [vx = detach(x), vy = detach(out), ax, keepdims](const Tensor& g,
                                                                                         std::span<Tensor> gr) {
        const Shape& sx = vx.shape();
        const auto kept = [&](const Tensor& t) {
          return keepdims ? t : reshape(t, detail::reduced_shape(sx, ax, true));
        };
        const Tensor hit = astype(vx == kept(vy), DType::float32);
        const Tensor count = sum(hit, Axes(ax), true);
        gr[0] = hit * (kept(g) / count);
      });
    }
    return out;
  }, x);
}

}  // namespace

Tensor max(const Tensor& x, const Axes& axes, bool keepdims) { return extremum(x, axes, keepdims, true); }
Tensor min(const Tensor& x, const Axes& axes, bool keepdims) { return extremum(x, axes, keepdims, false); }

namespace {

/// True when `v` should replace the current best `best`: larger, or the first NaN (NaN counts as
/// the maximum, as NumPy's argmax); ties keep the earlier index.
template <class T>
inline bool beats(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) return v > best || (v != v && best == best);
  return v > best;
}

template <class T>
void argmax_kernel(const T* x, std::int32_t* out, const detail::AxisView& v) {
  const std::int64_t n = v.n, inner = v.inner;
  if (inner == 1) {
    detail::parallel_for(v.outer, std::max<std::int64_t>(1, detail::kParallelGrain / n), [&](std::int64_t o0, std::int64_t o1) {
      for (std::int64_t o = o0; o < o1; ++o) {
        const T* px = x + o * n;
        std::int64_t best = 0;
        if constexpr (std::is_same_v<T, float>) {
          // The (vectorised) maximum first, then its first position: a compare-and-branch per
          // element on unsorted data mispredicts often.
          const float m = detail::max_contiguous(px, n);
          if (m != m)
            while (px[best] == px[best]) ++best;  // the first NaN
          else
            while (px[best] != m) ++best;
        } else {
          for (std::int64_t k = 1; k < n; ++k)
            if (beats(px[k], px[best])) best = k;
        }
        out[o] = static_cast<std::int32_t>(best);
      }
    });
    return;
  }
  // Along a middle axis: a running best value and index per inner position, vectorisable over i.
  detail::parallel_for(v.outer, std::max<std::int64_t>(1, detail::kParallelGrain / (n * inner)),
                       [&](std::int64_t o0, std::int64_t o1) {
                         std::vector<T> best(static_cast<std::size_t>(inner));
                         for (std::int64_t o = o0; o < o1; ++o) {
                           const T* px = x + o * n * inner;
                           std::int32_t* po = out + o * inner;
                           std::copy_n(px, inner, best.data());
                           std::fill_n(po, inner, 0);
                           for (std::int64_t k = 1; k < n; ++k)
                             for (std::int64_t i = 0; i < inner; ++i) {
                               const T val = px[k * inner + i];
                               const bool take = beats(val, best[static_cast<std::size_t>(i)]);
                               best[static_cast<std::size_t>(i)] = take ? val : best[static_cast<std::size_t>(i)];
                               po[i] = take ? static_cast<std::int32_t>(k) : po[i];
                             }
                         }
                       });
}

}  // namespace

Tensor argmax(const Tensor& x, int axis, bool keepdims) {
  return detail::traced("argmax", [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, "argmax");
    // Not differentiable, but allowed on a tracked input (accuracy during training): the int32
    // result carries no node, so nothing flows back through it.
    const int a = normalize_axis(axis, x.rank(), "argmax");
    const Shape& s = x.shape();
    if (s[a] == 0)
      throw ValueError(
          fmt::format("weft::argmax: axis {} of shape {} has extent 0, so there is no largest element", a, s.str()));
    if (s[a] - 1 > std::numeric_limits<std::int32_t>::max())
      throw ValueError(fmt::format("weft::argmax: axis {} of shape {} is too long for int32 indices", a, s.str()));
    Tensor out = detail::empty(detail::reduced_shape(s, {a}, keepdims), DType::int32);
    const auto view = detail::axis_view(s, a);
    if (x.dtype() == DType::float32)
      argmax_kernel(data<float>(x), detail::mutable_data<std::int32_t>(out), view);
    else
      argmax_kernel(data<std::int32_t>(x), detail::mutable_data<std::int32_t>(out), view);
    return out;
  }, x);
}

Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdims) {
  return detail::traced("logsumexp", [=](const Tensor& x) -> Tensor {
    detail::require_float(x, "logsumexp");
    const auto ax = detail::normalize_axes(axes, x.rank(), "logsumexp");
    const Shape& sx = x.shape();
    std::int64_t n = 1;
    for (int a : ax) n *= sx[a];
    const Tensor vx = detach(x);
    if (n == 0) {  // the log of an empty sum
      Tensor out = full(detail::reduced_shape(sx, ax, keepdims), -std::numeric_limits<float>::infinity());
      if (autodiff::any_tracked(x))
        autodiff::record_ops(out, "logsumexp", {&x}, [sx](const Tensor&, std::span<Tensor> gr) { gr[0] = zeros(sx); });
      return out;
    }
    // Shift by the maximum; a row whose maximum is infinite shifts by 0 instead (as JAX), so an
    // all -inf row gives log(0) = -inf rather than NaN from -inf - -inf. (m, log s) per row.
    const auto shift_and_log = [ax](const Tensor& vx) {
      Tensor m = detail::reduce_raw(vx, ax, true, detail::ReduceKind::max);
      m = detail::map_unary<float, float>(m, [](float v) { return std::isfinite(v) ? v : 0.0f; });
      const Tensor e = map_binary<float, float>(vx, m, "logsumexp", [](float a, float b) { return std::exp(a - b); });
      const Tensor ls = detail::map_unary<float, float>(detail::reduce_raw(e, ax, true, detail::ReduceKind::sum),
                                                        [](float s) { return std::log(s); });
      return std::pair{m, ls};
    };
    const auto [m, ls] = shift_and_log(vx);
    Tensor out = detail::alias(ls + m, detail::reduced_shape(sx, ax, keepdims));
    if (autodiff::any_tracked(x)) {
      // The softmax weights exp((x - m) - log s): shifting by m first keeps them accurate for
      // large logits (exp(x - logsumexp) would lose the low bits of x - logsumexp). An op of its own
      // over g and x ((m, log s) formed again), which a weft::jit trace records.
      autodiff::record_ops(out, "logsumexp", {&x}, [vx, shift_and_log, ax, keepdims](const Tensor& g,
                                                                                     std::span<Tensor> gr) {
        gr[0] = detail::traced(
            "logsumexp_grad",
            [shift_and_log, ax, keepdims](const Tensor& g, const Tensor& x) {
              const auto [m, ls] = shift_and_log(x);
              const Tensor shifted =
                  map_binary<float, float>(x, m, "logsumexp", [](float a, float b) { return a - b; });
              const Tensor w =
                  map_binary<float, float>(shifted, ls, "logsumexp", [](float a, float b) { return std::exp(a - b); });
              return w * detail::keep_axes(g, x.shape(), ax, keepdims);
            },
            g, vx);
      });
    }
    return out;
  }, x);
}

}  // namespace weft
