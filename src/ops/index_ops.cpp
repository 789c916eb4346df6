// Ops that select or join elements by position: concat, slice, slice_axis, take, one_hot.
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft {

using detail::data;
using detail::detach;

namespace {

std::string dims_str(const std::vector<std::int64_t>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }

/// Calls f(T{}) with T the element type of `dtype`.
template <class F>
void with_element_type(DType dtype, F&& f) {
  if (dtype == DType::float32)
    f(float{});
  else
    f(std::int32_t{});
}

/// The row-major strides of `shape`.
std::vector<std::int64_t> contiguous_strides(const Shape& shape) {
  std::vector<std::int64_t> s(static_cast<std::size_t>(shape.rank()), 1);
  for (int d = shape.rank() - 2; d >= 0; --d) s[static_cast<std::size_t>(d)] = s[static_cast<std::size_t>(d) + 1] * shape[d + 1];
  return s;
}

}  // namespace

// ---------------------------------------------------------------- concat

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  return detail::traced("concat", [=](const std::vector<Tensor>& xs) -> Tensor {
    if (xs.empty()) throw ValueError("weft::concat: got an empty list of tensors; pass at least one tensor to join");
    for (const Tensor& x : xs) detail::require_defined(x, "concat");
    const Tensor& x0 = xs[0];
    const int rank = x0.rank();
    if (rank == 0)
      throw ShapeError("weft::concat: input 0 is a scalar (shape ()); concat joins along an existing axis, so "
                       "reshape scalars to (1,) first");
    const int a = normalize_axis(axis, rank, "concat");
    std::int64_t total = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const Tensor& x = xs[i];
      const std::string which = fmt::format("input {} has shape {}", i, x.shape().str());
      if (x.dtype() != x0.dtype())
        throw DTypeError(fmt::format("weft::concat: {} and dtype {} but input 0 is {}; all inputs need one dtype (weft "
                                     "does not promote), convert with weft::astype",
                                     which, name(x.dtype()), name(x0.dtype())));
      if (x.rank() != rank)
        throw ShapeError(fmt::format("weft::concat: {} (rank {}) but input 0 has shape {} (rank {}); all inputs need the "
                                     "same rank",
                                     which, x.rank(), x0.shape().str(), rank));
      for (int d = 0; d < rank; ++d)
        if (d != a && x.shape()[d] != x0.shape()[d])
          throw ShapeError(fmt::format("weft::concat: {} but input 0 has shape {}: axis {} has extent {} vs {}; all "
                                       "extents must agree except along the joining axis {}",
                                       which, x0.shape().str(), d, x.shape()[d], x0.shape()[d], a));
      total += x.shape()[a];
    }
    if (xs.size() == 1) return x0;

    const Shape out_shape = x0.shape().with(a, total);
    const auto view = detail::axis_view(out_shape, a);
    std::vector<std::int64_t> offsets;  // start of each input along the axis
    for (std::int64_t off = 0; const Tensor& x : xs) {
      offsets.push_back(off);
      off += x.shape()[a];
    }
    Tensor out = detail::empty(out_shape, x0.dtype());
    with_element_type(x0.dtype(), [&]<class T>(T) {
      T* po = detail::mutable_data<T>(out);
      const std::int64_t row = total * view.inner;  // one outer index of the output
      detail::parallel_for(view.outer, std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(row, 1)),
                           [&](std::int64_t o0, std::int64_t o1) {
                             for (std::int64_t o = o0; o < o1; ++o)
                               for (std::size_t i = 0; i < xs.size(); ++i) {
                                 const std::int64_t len = xs[i].shape()[a] * view.inner;
                                 std::copy_n(data<T>(xs[i]) + o * len, len, po + o * row + offsets[i] * view.inner);
                               }
                           });
    });

    bool tracked = false;
    for (const Tensor& x : xs) tracked = tracked || autodiff::any_tracked(x);
    if (tracked) {
      std::vector<bool> need;
      std::vector<std::int64_t> extents;
      for (const Tensor& x : xs) {
        need.push_back(x.is_tracked());
        extents.push_back(x.shape()[a]);
      }
      autodiff::record_ops(out, "concat", std::span<const Tensor>(xs),
                       [a, offsets, extents, need](const Tensor& g, std::span<Tensor> gr) {
                         for (std::size_t i = 0; i < need.size(); ++i)
                           if (need[i]) gr[i] = slice_axis(g, a, offsets[i], offsets[i] + extents[i]);
                       });
    }
    return out;
  }, xs);
}

// ---------------------------------------------------------------- slice

namespace {

Tensor slice_impl(const Tensor& x, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& limit,
                  const std::vector<std::int64_t>& strides, const char* op) {
  return detail::traced(op, [=](const Tensor& x) -> Tensor {
    const int rank = x.rank();
    const std::string where = fmt::format("weft::{}: ", op);
    auto check_length = [&](const std::vector<std::int64_t>& v, const char* what) {
      if (static_cast<int>(v.size()) != rank)
        throw ShapeError(fmt::format("{}`{}` {} has {} entries but the tensor of shape {} has rank {}; give one entry "
                                     "per axis",
                                     where, what, dims_str(v), v.size(), x.shape().str(), rank));
    };
    check_length(start, "start");
    check_length(limit, "limit");
    if (!strides.empty()) check_length(strides, "strides");

    const auto contiguous = contiguous_strides(x.shape());
    std::vector<std::int64_t> dims(static_cast<std::size_t>(rank)), in_stride(static_cast<std::size_t>(rank));
    std::int64_t offset = 0;
    bool identity = true;
    for (int d = 0; d < rank; ++d) {
      const auto u = static_cast<std::size_t>(d);
      const std::int64_t n = x.shape()[d], b = start[u], e = limit[u], s = strides.empty() ? 1 : strides[u];
      const std::string axis_in = fmt::format(" on axis {} of shape {}", d, x.shape().str());
      if (s < 1) throw ValueError(fmt::format("{}stride {}{} must be at least 1", where, s, axis_in));
      if (b < 0 || b > n) throw ValueError(fmt::format("{}start {}{} is outside [0, {}]", where, b, axis_in, n));
      if (e < b || e > n)
        throw ValueError(fmt::format("{}limit {}{} is outside [start, extent] = [{}, {}]", where, e, axis_in, b, n));
      dims[u] = (e - b + s - 1) / s;
      in_stride[u] = s * contiguous[u];
      offset += b * contiguous[u];
      identity = identity && dims[u] == n;
    }
    if (identity) return x;  // every element, in order: the same value

    const Shape out_shape(dims);
    Tensor out = detail::empty(out_shape, x.dtype());
    with_element_type(x.dtype(), [&]<class T>(T) {
      detail::strided_gather(data<T>(x) + offset, detail::mutable_data<T>(out), out_shape, in_stride);
    });
    if (autodiff::any_tracked(x)) {
      // The gradient is an op of its own, which a weft::jit trace records.
      autodiff::record_ops(out, op, {&x}, [sx = x.shape(), offset, in_stride](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = detail::traced(
            "slice_grad",
            [sx, offset, in_stride](const Tensor& g) {
              Tensor gx = zeros(sx);
              detail::strided_scatter(data<float>(g), detail::mutable_data<float>(gx) + offset, g.shape(), in_stride);
              return gx;
            },
            g);
      });
    }
    return out;
  }, x);
}

}  // namespace

Tensor slice(const Tensor& x, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& limit,
             const std::vector<std::int64_t>& strides) {
  detail::require_defined(x, "slice");
  return slice_impl(x, start, limit, strides, "slice");
}

Tensor slice_axis(const Tensor& x, int axis, std::int64_t start, std::int64_t stop) {
  detail::require_defined(x, "slice_axis");
  const int a = normalize_axis(axis, x.rank(), "slice_axis");
  const std::int64_t n = x.shape()[a];
  // Negative bounds count from the end once (as lax.slice_in_dim); no clamping beyond that.
  const std::int64_t b = start < 0 ? start + n : start, e = stop < 0 ? stop + n : stop;
  const std::string axis_in = fmt::format(" on axis {} of shape {}", a, x.shape().str());
  const std::string range = fmt::format("[{}, {}] (negative values count from the end)", -n, n);
  if (b < 0 || b > n)
    throw ValueError(fmt::format("weft::slice_axis: start {}{} is outside {}", start, axis_in, range));
  if (e < 0 || e > n)
    throw ValueError(fmt::format("weft::slice_axis: stop {}{} is outside {}", stop, axis_in, range));
  if (e < b)
    throw ValueError(
        fmt::format("weft::slice_axis: stop {} comes before start {}{}; give start <= stop", stop, start, axis_in));
  std::vector<std::int64_t> lo(static_cast<std::size_t>(x.rank()), 0), hi = x.shape().to_vector();
  lo[static_cast<std::size_t>(a)] = b;
  hi[static_cast<std::size_t>(a)] = e;
  return slice_impl(x, lo, hi, {}, "slice_axis");
}

// ---------------------------------------------------------------- take

namespace {

/// "[1, 2]": the multi-index of flat position `p` in `shape`.
std::string position_str(std::int64_t p, const Shape& shape) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(shape.rank()));
  for (int d = shape.rank() - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = p % shape[d];
    p /= shape[d];
  }
  return dims_str(idx);
}

}  // namespace

Tensor take(const Tensor& x, const Tensor& indices) {
  return detail::traced("take", [=](const Tensor& x, const Tensor& indices) -> Tensor {
    detail::require_defined(x, "take");
    detail::require_defined(indices, "take");
    if (indices.dtype() != DType::int32)
      throw DTypeError(fmt::format("weft::take: indices must be int32, got {} of shape {}; convert them with "
                                   "weft::astype(indices, DType::int32)",
                                   name(indices.dtype()), indices.shape().str()));
    if (x.rank() == 0)
      throw ShapeError("weft::take: x is a scalar (shape ()); take selects rows along axis 0, so x needs rank >= 1");
    if (indices.rank() + x.rank() - 1 > Shape::kMaxRank)
      throw ShapeError(fmt::format("weft::take: indices of shape {} and x of shape {} give a result of rank {}, more "
                                   "than {}",
                                   indices.shape().str(), x.shape().str(), indices.rank() + x.rank() - 1,
                                   Shape::kMaxRank));
    const std::int64_t n = x.shape()[0];
    const std::int64_t m = indices.size();
    const std::int32_t* idx = data<std::int32_t>(indices);
    // An index outside [0, n) is an error. This deliberately differs from jnp.take, which by
    // default fills such rows with NaN (or clamps/wraps by mode): a wrong token id or label should
    // stop training loudly, not turn into NaN losses or silently reuse another row.
    for (std::int64_t p = 0; p < m; ++p)
      if (idx[p] < 0 || idx[p] >= n)
        throw ValueError(fmt::format("weft::take: index {} at position {} of indices (shape {}) is outside [0, {}), the "
                                     "rows of x (shape {}); weft does not clamp or wrap indices",
                                     idx[p], position_str(p, indices.shape()), indices.shape().str(), n,
                                     x.shape().str()));

    std::vector<std::int64_t> dims = indices.shape().to_vector();
    for (int d = 1; d < x.rank(); ++d) dims.push_back(x.shape()[d]);
    const Shape out_shape(dims);
    std::int64_t row = 1;  // elements per row of x
    for (int d = 1; d < x.rank(); ++d) row *= x.shape()[d];
    Tensor out = detail::empty(out_shape, x.dtype());
    with_element_type(x.dtype(), [&]<class T>(T) {
      const T* px = data<T>(x);
      T* po = detail::mutable_data<T>(out);
      detail::parallel_for(m, std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(row, 1)),
                           [&](std::int64_t p0, std::int64_t p1) {
                             for (std::int64_t p = p0; p < p1; ++p) std::copy_n(px + idx[p] * row, row, po + p * row);
                           });
    });
    if (autodiff::any_tracked(x)) {
      autodiff::record_ops(out, "take", {&x}, [sx = x.shape(), vi = detach(indices), row](const Tensor& g,
                                                                                         std::span<Tensor> gr) {
        // An op of its own (a weft::jit trace records it). Scatter-add without atomics: threads
        // split the columns of a row, and each column adds the selected rows in index order, so
        // the sums are the same on any thread count.
        gr[0] = detail::traced(
            "take_grad",
            [sx, row](const Tensor& g, const Tensor& vi) {
              Tensor gx = zeros(sx);
              float* pgx = detail::mutable_data<float>(gx);
              const float* pg = data<float>(g);
              const std::int32_t* ix = data<std::int32_t>(vi);
              const std::int64_t count = vi.size();
              detail::parallel_for(row,
                                   std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(count, 1)),
                                   [&](std::int64_t c0, std::int64_t c1) {
                                     for (std::int64_t p = 0; p < count; ++p) {
                                       float* dst = pgx + ix[p] * row;
                                       const float* src = pg + p * row;
                                       for (std::int64_t c = c0; c < c1; ++c) dst[c] += src[c];
                                     }
                                   });
              return gx;
            },
            g, vi);
      });
    }
    return out;
  }, x, indices);
}

// ---------------------------------------------------------------- one_hot

Tensor one_hot(const Tensor& labels, std::int64_t num_classes) {
  return detail::traced("one_hot", [=](const Tensor& labels) -> Tensor {
    detail::require_defined(labels, "one_hot");
    if (labels.dtype() != DType::int32)
      throw DTypeError(fmt::format("weft::one_hot: labels must be int32 class indices, got {} of shape {}; convert them "
                                   "with weft::astype(labels, DType::int32)",
                                   name(labels.dtype()), labels.shape().str()));
    if (num_classes <= 0)
      throw ValueError(fmt::format("weft::one_hot: num_classes must be positive, got {}", num_classes));
    if (labels.rank() + 1 > Shape::kMaxRank)
      throw ShapeError(fmt::format("weft::one_hot: labels of shape {} would give a result of rank {}, more than {}",
                                   labels.shape().str(), labels.rank() + 1, Shape::kMaxRank));
    std::vector<std::int64_t> dims = labels.shape().to_vector();
    dims.push_back(num_classes);
    Tensor out = zeros(Shape(dims));
    float* po = detail::mutable_data<float>(out);
    const std::int32_t* pl = data<std::int32_t>(labels);
    const std::int64_t m = labels.size();
    // Labels outside [0, num_classes) leave their row all zero, as jax.nn.one_hot.
    for (std::int64_t p = 0; p < m; ++p)
      if (pl[p] >= 0 && pl[p] < num_classes) po[p * num_classes + pl[p]] = 1.0f;
    return out;
  }, labels);
}

}  // namespace weft
