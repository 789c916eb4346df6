// Reductions over axes (sum, mean, var) and the reduction kernel they share with the extrema.
#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft {

namespace detail {

std::vector<int> normalize_axes(const Axes& axes, int rank, const char* op) {
  std::vector<int> out;
  if (axes.is_all()) {
    for (int i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (int a : axes.list()) out.push_back(normalize_axis(a, rank, op));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw ShapeError(fmt::format("weft::{}: an axis is listed twice; list each axis once", op));
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdims) {
  std::vector<std::int64_t> dims;
  for (int i = 0; i < shape.rank(); ++i) {
    const bool reduced = std::binary_search(axes.begin(), axes.end(), i);
    if (!reduced)
      dims.push_back(shape[i]);
    else if (keepdims)
      dims.push_back(1);
  }
  return Shape(dims);
}

Tensor keep_axes(const Tensor& t, const Shape& x_shape, const std::vector<int>& axes, bool keepdims) {
  return keepdims ? t : alias(t, reduced_shape(x_shape, axes, true));
}

std::int64_t averaged_count(const Shape& shape, const std::vector<int>& axes, const char* op) {
  std::int64_t n = 1;
  for (int a : axes) n *= shape[a];
  if (n == 0)
    throw ValueError(fmt::format("weft::{}: the reduced axes of shape {} hold no elements", op, shape.str()));
  return n;
}

namespace {

constexpr std::int64_t kLanes = 16;          // independent partial sums: one AVX-512 register
constexpr std::int64_t kBlock = 1 << 16;     // fixed block of a long reduction (thread-count independent)

template <ReduceKind K, class T>
constexpr T identity() {
  if constexpr (K == ReduceKind::sum) return T{0};
  if constexpr (K == ReduceKind::max)
    return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
  return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
}

template <ReduceKind K, class T>
inline T combine(T a, T b) {
  if constexpr (K == ReduceKind::sum) return a + b;
  // NaN propagates; bitwise | (no branch) so that the lane loops vectorise.
  if constexpr (K == ReduceKind::max) return ((a > b) | (a != a)) ? a : b;
  return ((a < b) | (a != a)) ? a : b;
}

/// Reduces x[0..n) with kLanes partial results combined in a fixed order.
template <ReduceKind K, class T>
T reduce_contiguous(const T* x, std::int64_t n) {
  if (n < kLanes) {  // short rows (a few classes) in order, without setting up the lanes
    T acc = identity<K, T>();
    for (std::int64_t i = 0; i < n; ++i) acc = combine<K>(acc, x[i]);
    return acc;
  }
  T acc[kLanes];
  for (auto& a : acc) a = identity<K, T>();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
#pragma omp simd  // max/min select per lane; without it the unrolled lanes stay scalar branches
    for (std::int64_t j = 0; j < kLanes; ++j) acc[j] = combine<K>(acc[j], x[i + j]);
  for (std::int64_t j = 0; i < n; ++i, ++j) acc[j] = combine<K>(acc[j], x[i]);
  for (std::int64_t w = kLanes / 2; w > 0; w /= 2)
    for (std::int64_t j = 0; j < w; ++j) acc[j] = combine<K>(acc[j], acc[j + w]);
  return acc[0];
}

/// out[o, i] = reduce_r x[o, r, i] for a (outer, r, inner) view of x.
template <ReduceKind K, class T>
void reduce_pass(const T* x, T* out, std::int64_t outer, std::int64_t r, std::int64_t inner) {
  if (inner == 1) {
    if (outer == 1 && r > 2 * kBlock) {
      const std::int64_t blocks = (r + kBlock - 1) / kBlock;
      std::vector<T> partial(static_cast<std::size_t>(blocks));
      parallel_for(blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
        for (std::int64_t b = b0; b < b1; ++b)
          partial[static_cast<std::size_t>(b)] =
              reduce_contiguous<K>(x + b * kBlock, std::min(kBlock, r - b * kBlock));
      });
      out[0] = reduce_contiguous<K>(partial.data(), blocks);
      return;
    }
    parallel_for(outer, std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(r, 1)),
                 [&](std::int64_t o0, std::int64_t o1) {
                   for (std::int64_t o = o0; o < o1; ++o) out[o] = reduce_contiguous<K>(x + o * r, r);
                 });
    return;
  }
  // Vectorised over the inner axis; the r terms are combined in order.
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(r * inner, 1));
  parallel_for(outer, grain, [&](std::int64_t o0, std::int64_t o1) {
    for (std::int64_t o = o0; o < o1; ++o) {
      T* po = out + o * inner;
      const T* px = x + o * r * inner;
      std::copy_n(px, inner, po);
      for (std::int64_t k = 1; k < r; ++k)
        for (std::int64_t i = 0; i < inner; ++i) po[i] = combine<K>(po[i], px[k * inner + i]);
    }
  });
}

template <class T>
void reduce_dispatch(ReduceKind kind, const T* x, T* out, std::int64_t outer, std::int64_t r, std::int64_t inner) {
  switch (kind) {
    case ReduceKind::sum: reduce_pass<ReduceKind::sum>(x, out, outer, r, inner); break;
    case ReduceKind::max: reduce_pass<ReduceKind::max>(x, out, outer, r, inner); break;
    case ReduceKind::min: reduce_pass<ReduceKind::min>(x, out, outer, r, inner); break;
  }
}

}  // namespace

float max_contiguous(const float* x, std::int64_t n) { return reduce_contiguous<ReduceKind::max>(x, n); }

Tensor reduce_raw(const Tensor& x, const std::vector<int>& axes, bool keepdims, ReduceKind kind) {
  const Shape& shape = x.shape();
  for (int a : axes) {
    if (shape[a] == 0 && kind != ReduceKind::sum)
      throw ValueError(fmt::format("weft::{}: cannot reduce over axis {} of extent 0 in shape {} (the result has no "
                                   "identity)",
                                   kind == ReduceKind::max ? "max" : "min", a, shape.str()));
  }
  if (x.dtype() == DType::int32 && kind == ReduceKind::sum) return sum_int(x, axes, keepdims);
  const bool is_int = x.dtype() == DType::int32;
  Tensor cur = detach(x);
  std::vector<std::int64_t> dims = shape.to_vector();
  // Reduce runs of consecutive axes, last run first, so earlier axis numbers stay valid.
  std::size_t k = axes.size();
  while (k > 0) {
    std::size_t start = k - 1;
    while (start > 0 && axes[start - 1] == axes[start] - 1) --start;
    const int a0 = axes[start], a1 = axes[k - 1];
    std::int64_t outer = 1, r = 1, inner = 1;
    for (int i = 0; i < a0; ++i) outer *= dims[static_cast<std::size_t>(i)];
    for (int i = a0; i <= a1; ++i) r *= dims[static_cast<std::size_t>(i)];
    for (std::size_t i = static_cast<std::size_t>(a1) + 1; i < dims.size(); ++i) inner *= dims[i];
    for (int i = a0; i <= a1; ++i) dims[static_cast<std::size_t>(i)] = 1;
    Tensor next = empty(Shape(dims), x.dtype());
    if (is_int) {
      reduce_dispatch(kind, data<std::int32_t>(cur), mutable_data<std::int32_t>(next), outer, r, inner);
    } else if (r == 0) {
      std::fill_n(mutable_data<float>(next), outer * inner, 0.0f);
    } else {
      reduce_dispatch(kind, data<float>(cur), mutable_data<float>(next), outer, r, inner);
    }
    cur = next;
    k = start;
  }
  return alias(cur, reduced_shape(shape, axes, keepdims));
}

Tensor sum_int(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  // Exact integer sums (counts of a mask); rare and small, so a plain index walk.
  const Shape& shape = x.shape();
  const Shape kept = reduced_shape(shape, axes, true);
  std::vector<std::int64_t> acc(static_cast<std::size_t>(kept.numel()), 0);
  const std::int32_t* px = data<std::int32_t>(x);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(shape.rank()), 0);
  for (std::int64_t i = 0; i < shape.numel(); ++i) {
    std::int64_t o = 0;
    for (int d = 0; d < shape.rank(); ++d) o = o * kept[d] + (kept[d] == 1 ? 0 : idx[static_cast<std::size_t>(d)]);
    acc[static_cast<std::size_t>(o)] += px[i];
    for (int d = shape.rank() - 1; d >= 0; --d) {
      if (++idx[static_cast<std::size_t>(d)] < shape[d]) break;
      idx[static_cast<std::size_t>(d)] = 0;
    }
  }
  Tensor out = empty(reduced_shape(shape, axes, keepdims), DType::int32);
  std::int32_t* po = mutable_data<std::int32_t>(out);
  for (std::size_t i = 0; i < acc.size(); ++i) {
    if (acc[i] > std::numeric_limits<std::int32_t>::max() || acc[i] < std::numeric_limits<std::int32_t>::min())
      throw ValueError("weft::sum: an int32 sum overflows int32; convert to float32 first");
    po[i] = static_cast<std::int32_t>(acc[i]);
  }
  return out;
}

namespace {

/// A float sum over `axes` (sorted) of an array of shape `shape` lowered for weft::jit plans, where
/// reduce_raw makes one pass: the axes one run of neighbours (a bias gradient's batch axes, a loss's
/// every axis). The same reduce_dispatch call, so the same bits. Declined otherwise.
JitKernel lower_sum(const Shape& shape, const std::vector<int>& axes) {
  if (axes.empty() || axes.back() - axes.front() + 1 != static_cast<int>(axes.size())) return {};
  std::int64_t outer = 1, r = 1, inner = 1;
  for (int i = 0; i < shape.rank(); ++i)
    (i < axes.front() ? outer : i <= axes.back() ? r : inner) *= shape[i];
  return {[outer, r, inner](const void* const* in, void* const* out) {
    if (r == 0)
      std::fill_n(static_cast<float*>(out[0]), outer * inner, 0.0f);
    else
      reduce_dispatch(ReduceKind::sum, static_cast<const float*>(in[0]), static_cast<float*>(out[0]), outer, r, inner);
  }};
}

/// The axes sum_to_shape reduces: the leading ones g has beyond `shape`, and those `shape` has as 1.
std::vector<int> summed_axes(const Shape& g, const Shape& shape) {
  const int lead = g.rank() - shape.rank();
  std::vector<int> axes;
  for (int i = 0; i < g.rank(); ++i)
    if (i < lead || (shape[i - lead] == 1 && g[i] != 1)) axes.push_back(i);
  return axes;
}

}  // namespace

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  // An op of its own for weft::jit: the gradients that record_ops nodes compute call it.
  return traced_lowered(
      "sum_to_shape",
      [shape](const Tensor& g) {
        return alias(reduce_raw(g, summed_axes(g.shape(), shape), true, ReduceKind::sum), shape);
      },
      [shape](const Tensor& g, const Tensor&) {
        return g.dtype() == DType::float32 ? lower_sum(g.shape(), summed_axes(g.shape(), shape)) : JitKernel{};
      },
      g);
}

}  // namespace detail

Tensor sum(const Tensor& x, const Axes& axes, bool keepdims) {
  const auto lower = [axes](const Tensor& x, const Tensor&) {
    return x.dtype() == DType::float32 ? detail::lower_sum(x.shape(), detail::normalize_axes(axes, x.rank(), "sum"))
                                       : detail::JitKernel{};
  };
  return detail::traced_lowered("sum", [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, "sum");
    const auto ax = detail::normalize_axes(axes, x.rank(), "sum");
    if (x.dtype() == DType::int32) return detail::sum_int(x, ax, keepdims);
    Tensor out = detail::reduce_raw(x, ax, keepdims, detail::ReduceKind::sum);
    if (autodiff::any_tracked(x)) {
      autodiff::record_ops(out, "sum", {&x}, [sx = x.shape(), ax, keepdims](const Tensor& g, std::span<Tensor> gr) {
        const Tensor gk = keepdims ? g : reshape(g, detail::reduced_shape(sx, ax, true));
        gr[0] = broadcast_to(gk, sx);
      });
    }
    return out;
  }, lower, x);
}

Tensor mean(const Tensor& x, const Axes& axes, bool keepdims) {
  detail::require_defined(x, "mean");
  const auto ax = detail::normalize_axes(axes, x.rank(), "mean");
  const std::int64_t n = detail::averaged_count(x.shape(), ax, "mean");
  const Tensor xf = x.dtype() == DType::float32 ? x : astype(x, DType::float32);
  return sum(xf, Axes(ax), keepdims) * (1.0f / static_cast<float>(n));
}

Tensor var(const Tensor& x, const Axes& axes, bool keepdims) {
  return detail::traced("var", [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, "var");
    const auto ax = detail::normalize_axes(axes, x.rank(), "var");
    const std::int64_t n = detail::averaged_count(x.shape(), ax, "var");
    const float inv_n = 1.0f / static_cast<float>(n);
    // Two passes (the mean, then the mean of squared deviations): E[x^2] - E[x]^2 would cancel
    // catastrophically when the mean is large compared with the spread.
    const auto deviations = [ax, inv_n](const Tensor& x) {
      const Tensor xf = x.dtype() == DType::float32 ? detail::detach(x) : astype(x, DType::float32);
      return xf - detail::reduce_raw(xf, ax, true, detail::ReduceKind::sum) * inv_n;
    };
    Tensor out = detail::reduce_raw(square(deviations(x)), ax, keepdims, detail::ReduceKind::sum) * inv_n;
    if (autodiff::any_tracked(x)) {
      // d/dx mean((x - m)^2) = 2 (x - m) / n: the term through m vanishes because sum(x - m) = 0.
      // An op of its own over g and x (the deviations formed again), which a weft::jit trace records.
      autodiff::record_ops(out, "var", {&x}, [vx = detail::detach(x), deviations, ax, keepdims, inv_n](
                                                 const Tensor& g, std::span<Tensor> gr) {
        gr[0] = detail::traced(
            "var_grad",
            [deviations, ax, keepdims, inv_n](const Tensor& g, const Tensor& x) {
              const Tensor d = deviations(x);
              return d * (detail::keep_axes(g, d.shape(), ax, keepdims) * (2.0f * inv_n));
            },
            g, vx);
      });
    }
    return out;
  }, x);
}

Tensor standardize(const Tensor& x, const Axes& axes, float epsilon) {
  // Checked here, so that errors name standardize rather than the mean or var it is built from.
  detail::require_float(x, "standardize");
  const auto ax = detail::normalize_axes(axes, x.rank(), "standardize");
  (void)detail::averaged_count(x.shape(), ax, "standardize");
  const Axes over(ax);
  return (x - mean(x, over, true)) * rsqrt(var(x, over, true) + epsilon);
}

}  // namespace weft
