#pragma once
// Internal helpers shared by the op implementations.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../autodiff/node.hpp"
#include "../tensor_impl.hpp"
#include "axes.hpp"
#include "../parallel.hpp"
#include "weft/ops.hpp"

namespace weft::detail {

/// Sums `g` over the axes that broadcasting added or stretched, giving a tensor of `shape`
/// (the gradient of a broadcast operand).
Tensor sum_to_shape(const Tensor& g, const Shape& shape);

/// Elementwise kernels: out[i] = f(a[i]) and out[i] = f(a[i], b[i]) with broadcasting.
/// `R` is the result element type.
struct BroadcastPlan {
  Shape out;
  int ndim = 0;                        // collapsed dimensions
  std::int64_t extent[Shape::kMaxRank]{};
  std::int64_t stride_a[Shape::kMaxRank]{};
  std::int64_t stride_b[Shape::kMaxRank]{};
};
BroadcastPlan plan_broadcast(const Shape& a, const Shape& b, const char* op);

template <class T, class R, class F>
void binary_loop(const T* a, const T* b, R* out, const BroadcastPlan& p, F f) {
  const int nd = p.ndim;
  if (nd == 0) {
    out[0] = f(a[0], b[0]);
    return;
  }
  const std::int64_t inner = p.extent[nd - 1];
  const std::int64_t ia = p.stride_a[nd - 1], ib = p.stride_b[nd - 1];
  std::int64_t outer = 1;
  for (int d = 0; d < nd - 1; ++d) outer *= p.extent[d];
  auto run_inner = [&, f](const T* pa, const T* pb, R* po, std::int64_t begin, std::int64_t end) {
    if (ia == 1 && ib == 1) {
      for (std::int64_t i = begin; i < end; ++i) po[i] = f(pa[i], pb[i]);
    } else if (ia == 1 && ib == 0) {
      const T vb = pb[0];
      for (std::int64_t i = begin; i < end; ++i) po[i] = f(pa[i], vb);
    } else if (ia == 0 && ib == 1) {
      const T va = pa[0];
      for (std::int64_t i = begin; i < end; ++i) po[i] = f(va, pb[i]);
    } else {
      for (std::int64_t i = begin; i < end; ++i) po[i] = f(pa[i * ia], pb[i * ib]);
    }
  };
  if (outer == 1) {
    parallel_for(inner, kParallelGrain, [&](std::int64_t b0, std::int64_t e0) { run_inner(a, b, out, b0, e0); });
    return;
  }
  const std::int64_t rows_per_chunk = std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(inner, 1));
  parallel_for(outer, rows_per_chunk, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      std::int64_t rem = r, oa = 0, ob = 0;
      for (int d = nd - 2; d >= 0; --d) {
        const std::int64_t idx = rem % p.extent[d];
        rem /= p.extent[d];
        oa += idx * p.stride_a[d];
        ob += idx * p.stride_b[d];
      }
      run_inner(a + oa, b + ob, out + r * inner, 0, inner);
    }
  });
}

/// out = f(a, b) elementwise with broadcasting; T the operand type, R the result type.
template <class T, class R, class F>
Tensor map_binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  const BroadcastPlan p = plan_broadcast(a.shape(), b.shape(), op);
  Tensor out = empty(p.out, dtype_of<R>());
  binary_loop<T, R>(data<T>(a), data<T>(b), mutable_data<R>(out), p, f);
  return out;
}

/// po[i] = f(px[i]) for i in [0, n), in parallel chunks.
template <class T, class R, class F>
void unary_loop(const T* px, R* po, std::int64_t n, F f) {
  parallel_for(n, kParallelGrain, [&](std::int64_t b, std::int64_t e) {
    const F fn = f;  // a local copy: stores to po cannot alias the functor's captured values
    for (std::int64_t i = b; i < e; ++i) po[i] = fn(px[i]);
  });
}

/// out = f(x) elementwise.
template <class T, class R, class F>
Tensor map_unary(const Tensor& x, F f) {
  Tensor out = empty(x.shape(), dtype_of<R>());
  unary_loop<T, R>(data<T>(x), mutable_data<R>(out), x.size(), f);
  return out;
}

/// "(2, 3) and (4,)" for messages.
inline std::string shapes_str(const Shape& a, const Shape& b) { return a.str() + " and " + b.str(); }

}  // namespace weft::detail

namespace weft::detail {

enum class ReduceKind { sum, max, min };
/// The reduction of a float32 tensor (or an int32 one) over normalised `axes` (no gradient recorded).
/// Deterministic: the order of additions depends only on the shape, not on the thread count.
/// max and min propagate NaN and throw ValueError over an axis of extent 0.
Tensor reduce_raw(const Tensor& x, const std::vector<int>& axes, bool keepdims, ReduceKind kind);
/// The largest of x[0..n), n >= 1, NaN if any element is NaN (the kernel of max over a contiguous row).
float max_contiguous(const float* x, std::int64_t n);
/// Exact sum of an int32 tensor over normalised `axes`.
Tensor sum_int(const Tensor& x, const std::vector<int>& axes, bool keepdims);

/// A tensor seen as (outer, n, inner) around one axis: element (o, k, i) is at (o * n + k) * inner + i.
struct AxisView {
  std::int64_t outer = 1, n = 1, inner = 1;
};
inline AxisView axis_view(const Shape& shape, int axis) {
  AxisView v;
  for (int d = 0; d < axis; ++d) v.outer *= shape[d];
  v.n = shape[axis];
  for (int d = axis + 1; d < shape.rank(); ++d) v.inner *= shape[d];
  return v;
}

/// The same strided view with unit axes dropped and neighbouring axes merged where the strides
/// allow it, so that copies run over the longest contiguous rows (a trailing axis of extent 1, as
/// in NHWC images with one channel, would otherwise make every row one element long).
inline std::pair<Shape, std::vector<std::int64_t>> collapse_strided(const Shape& shape,
                                                                   const std::vector<std::int64_t>& stride) {
  std::vector<std::int64_t> dims, strides;
  for (int d = 0; d < shape.rank(); ++d) {
    const auto u = static_cast<std::size_t>(d);
    if (shape[d] == 1) continue;
    if (!dims.empty() && strides.back() == stride[u] * shape[d]) {
      dims.back() *= shape[d];
      strides.back() = stride[u];
      continue;
    }
    dims.push_back(shape[d]);
    strides.push_back(stride[u]);
  }
  if (dims.empty() && shape.numel() == 1) return {Shape{}, {}};
  if (dims.empty()) return {shape, stride};  // an empty tensor
  return {Shape(dims), strides};
}

/// Runs row(r, off, inner, s) for each row r of a row-major `shape` (rows along its last axis,
/// `inner` long), where off = sum over the other axes of index * stride and s is the last axis's
/// stride; rows are spread over threads. A scalar is one row of one element.
template <class Row>
void for_each_strided_row(const Shape& shape_in, const std::vector<std::int64_t>& stride_in, Row row) {
  // Named references, not a structured binding: clang before 16 cannot capture bindings in lambdas.
  const auto collapsed = collapse_strided(shape_in, stride_in);
  const Shape& shape = collapsed.first;
  const std::vector<std::int64_t>& stride = collapsed.second;
  const int rank = shape.rank();
  const std::int64_t n = shape.numel();
  if (n == 0) return;
  if (rank == 0) {
    row(0, 0, 1, 1);
    return;
  }
  const std::int64_t inner = shape[rank - 1];
  const std::int64_t s_inner = stride[static_cast<std::size_t>(rank - 1)];
  parallel_for(n / inner, std::max<std::int64_t>(1, kParallelGrain / inner), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      std::int64_t rem = r, off = 0;
      for (int d = rank - 2; d >= 0; --d) {
        off += (rem % shape[d]) * stride[static_cast<std::size_t>(d)];
        rem /= shape[d];
      }
      row(r, off, inner, s_inner);
    }
  });
}

/// out (of shape `out_shape`, row-major) = x read at offsets sum_d idx[d] * in_stride[d].
template <class T>
void strided_gather(const T* x, T* out, const Shape& out_shape, const std::vector<std::int64_t>& in_stride) {
  for_each_strided_row(out_shape, in_stride, [&](std::int64_t r, std::int64_t off, std::int64_t inner, std::int64_t s) {
    T* po = out + r * inner;
    const T* px = x + off;
    if (s == 1) {
      std::copy_n(px, inner, po);
    } else if (s == 0) {
      std::fill_n(po, inner, px[0]);
    } else {
      for (std::int64_t i = 0; i < inner; ++i) po[i] = px[i * s];
    }
  });
}

/// The inverse of strided_gather for distinct offsets: out at offsets sum_d idx[d] * out_stride[d]
/// = x (of shape `x_shape`, row-major). Positions not written keep their value.
template <class T>
void strided_scatter(const T* x, T* out, const Shape& x_shape, const std::vector<std::int64_t>& out_stride) {
  for_each_strided_row(x_shape, out_stride, [&](std::int64_t r, std::int64_t off, std::int64_t inner, std::int64_t s) {
    const T* px = x + r * inner;
    T* po = out + off;
    if (s == 1) {
      std::copy_n(px, inner, po);
    } else {
      for (std::int64_t i = 0; i < inner; ++i) po[i * s] = px[i];
    }
  });
}

}  // namespace weft::detail
