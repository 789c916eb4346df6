// Ops that move elements without arithmetic: reshape, transpose, broadcast_to.
#include <numeric>

#include <fmt/format.h>

#include "../checked.hpp"
#include "../format.hpp"
#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft {

using detail::data;
using detail::detach;
using detail::strided_gather;

namespace {

/// Blocked 2-D transpose: out[j, i] = x[i, j] for x of shape (m, n).
template <class T>
void transpose_2d(const T* x, T* out, std::int64_t m, std::int64_t n) {
  constexpr std::int64_t kTile = 32;
  const std::int64_t tiles_m = (m + kTile - 1) / kTile;
  detail::parallel_for(tiles_m, std::max<std::int64_t>(1, detail::kParallelGrain / (kTile * std::max<std::int64_t>(n, 1))),
                       [&](std::int64_t t0, std::int64_t t1) {
                         for (std::int64_t ti = t0; ti < t1; ++ti)
                           for (std::int64_t j0 = 0; j0 < n; j0 += kTile)
                             for (std::int64_t i = ti * kTile; i < std::min(m, (ti + 1) * kTile); ++i)
                               for (std::int64_t j = j0; j < std::min(n, j0 + kTile); ++j) out[j * m + i] = x[i * n + j];
                       });
}

template <class F>
Tensor dispatch_copy(const Tensor& x, const Shape& out_shape, F&& copy) {
  Tensor out = detail::empty(out_shape, x.dtype());
  if (x.dtype() == DType::float32)
    copy(data<float>(x), detail::mutable_data<float>(out));
  else
    copy(data<std::int32_t>(x), detail::mutable_data<std::int32_t>(out));
  return out;
}

}  // namespace

Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape) {
  detail::require_defined(x, "reshape");
  std::vector<std::int64_t> dims = shape;
  std::vector<std::int64_t> known_dims;  // the extents given, without the one to infer
  int infer = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (infer >= 0) throw ShapeError("weft::reshape: more than one -1 in the new shape; at most one extent can be inferred");
      infer = static_cast<int>(i);
    } else if (dims[i] < 0) {
      throw ShapeError(fmt::format("weft::reshape: extent {} in the new shape is negative", dims[i]));
    } else {
      known_dims.push_back(dims[i]);
    }
  }
  if (infer >= 0) {
    const std::string wanted = detail::extents_str(shape);
    const auto known = detail::checked_product(known_dims);
    if (!known)
      throw ShapeError(fmt::format("weft::reshape: the new shape {} has more than 2^63 - 1 elements (its "
                                   "extents overflow int64); no tensor can have it", wanted));
    if (*known == 0 || x.size() % *known != 0)
      throw ShapeError(
          fmt::format("weft::reshape: cannot reshape {} ({} elements) into {}", x.shape().str(), x.size(), wanted));
    dims[static_cast<std::size_t>(infer)] = x.size() / *known;
  }
  return reshape(x, Shape(dims));
}

Tensor reshape(const Tensor& x, std::initializer_list<std::int64_t> shape) {
  return reshape(x, std::vector<std::int64_t>(shape));
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  return detail::traced("reshape", [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, "reshape");
    if (shape.numel() != x.size())
      throw ShapeError(fmt::format("weft::reshape: cannot reshape {} ({} elements) into {} ({} elements)",
                                   x.shape().str(), x.size(), shape.str(), shape.numel()));
    Tensor out = detail::alias(x, shape);
    if (autodiff::any_tracked(x)) {
      autodiff::record_ops(out, "reshape", {&x}, [sx = x.shape()](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = reshape(g, sx);
      });
    }
    return out;
  }, x);
}

Tensor transpose(const Tensor& x, const std::vector<int>& perm_in) {
  return detail::traced("transpose", [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, "transpose");
    const int rank = x.rank();
    std::vector<int> perm = perm_in;
    if (perm.empty()) {
      perm.resize(static_cast<std::size_t>(rank));
      std::iota(perm.rbegin(), perm.rend(), 0);
    }
    if (static_cast<int>(perm.size()) != rank)
      throw ShapeError(fmt::format("weft::transpose: the permutation has {} entries but the tensor of shape {} has rank "
                                   "{}",
                                   perm.size(), x.shape().str(), rank));
    std::vector<bool> seen(static_cast<std::size_t>(rank), false);
    for (int& p : perm) {
      p = normalize_axis(p, rank, "transpose");
      if (seen[static_cast<std::size_t>(p)])
        throw ShapeError(fmt::format("weft::transpose: axis {} appears twice in the permutation", p));
      seen[static_cast<std::size_t>(p)] = true;
    }
    std::vector<std::int64_t> in_stride(static_cast<std::size_t>(rank)), dims(static_cast<std::size_t>(rank));
    std::vector<std::int64_t> contiguous(static_cast<std::size_t>(rank), 1);
    for (int d = rank - 2; d >= 0; --d) contiguous[static_cast<std::size_t>(d)] = contiguous[static_cast<std::size_t>(d) + 1] * x.shape()[d + 1];
    bool identity = true;
    for (int d = 0; d < rank; ++d) {
      dims[static_cast<std::size_t>(d)] = x.shape()[perm[static_cast<std::size_t>(d)]];
      in_stride[static_cast<std::size_t>(d)] = contiguous[static_cast<std::size_t>(perm[static_cast<std::size_t>(d)])];
      identity = identity && perm[static_cast<std::size_t>(d)] == d;
    }
    const Shape out_shape(dims);
    Tensor out;
    if (identity) {
      out = detail::alias(x, out_shape);
    } else if (rank == 2) {
      out = dispatch_copy(x, out_shape, [&](const auto* px, auto* po) { transpose_2d(px, po, x.shape()[0], x.shape()[1]); });
    } else {
      out = dispatch_copy(x, out_shape, [&](const auto* px, auto* po) { strided_gather(px, po, out_shape, in_stride); });
    }
    if (autodiff::any_tracked(x)) {
      std::vector<int> inverse(static_cast<std::size_t>(rank));
      for (int d = 0; d < rank; ++d) inverse[static_cast<std::size_t>(perm[static_cast<std::size_t>(d)])] = d;
      autodiff::record_ops(out, "transpose", {&x}, [inverse](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = transpose(g, inverse);
      });
    }
    return out;
  }, x);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  return detail::traced("broadcast_to", [=](const Tensor& x) -> Tensor {
    detail::require_defined(x, "broadcast_to");
    const Shape& s = x.shape();
    bool ok = s.rank() <= shape.rank();
    for (int i = 0; ok && i < s.rank(); ++i) {
      const std::int64_t d = s[i], t = shape[shape.rank() - s.rank() + i];
      ok = d == t || d == 1;
    }
    if (!ok)
      throw ShapeError(fmt::format("weft::broadcast_to: cannot broadcast shape {} to {}; each extent must "
                                   "equal the target's or be 1, counting from the last axis", s.str(), shape.str()));
    if (s == shape) return x;
    std::vector<std::int64_t> in_stride(static_cast<std::size_t>(shape.rank()), 0);
    std::int64_t c = 1;
    for (int i = s.rank() - 1; i >= 0; --i) {
      const int o = shape.rank() - s.rank() + i;
      in_stride[static_cast<std::size_t>(o)] = s[i] == 1 ? 0 : c;
      c *= s[i];
    }
    Tensor out = dispatch_copy(x, shape, [&](const auto* px, auto* po) { strided_gather(px, po, shape, in_stride); });
    if (autodiff::any_tracked(x)) {
      autodiff::record_ops(out, "broadcast_to", {&x}, [s](const Tensor& g, std::span<Tensor> gr) {
        gr[0] = detail::sum_to_shape(g, s);
      });
    }
    return out;
  }, x);
}

}  // namespace weft
