// matmul with NumPy semantics on the GEMM backend, and its gradient.
#include <array>
#include <limits>

#include <fmt/format.h>

#include "../backend/gemm.hpp"
#include "../checked.hpp"
#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft {

using detail::data;
using detail::detach;

namespace {

struct MatmulDims {
  std::int64_t m, k, n;
  Shape batch;  // broadcast batch shape
};

MatmulDims check_dims(const Tensor& a, const Tensor& b, MatmulOptions o) {
  const Shape &sa = a.shape(), &sb = b.shape();
  const int ra = sa.rank(), rb = sb.rank();
  const std::int64_t m = o.transpose_a ? sa[ra - 1] : sa[ra - 2];
  const std::int64_t ka = o.transpose_a ? sa[ra - 2] : sa[ra - 1];
  const std::int64_t kb = o.transpose_b ? sb[rb - 1] : sb[rb - 2];
  const std::int64_t n = o.transpose_b ? sb[rb - 2] : sb[rb - 1];
  if (ka != kb)
    throw ShapeError(fmt::format("weft::matmul: shapes {}{}{} do not fit: a contracts over {} but b over {}; the last "
                                 "axis of a must equal the second-to-last of b",
                                 detail::shapes_str(sa, sb), o.transpose_a ? " (a transposed)" : "",
                                 o.transpose_b ? " (b transposed)" : "", ka, kb));
  const Shape batch = broadcast_shapes(Shape(std::span<const std::int64_t>(sa.begin(), sa.end() - 2)),
                                       Shape(std::span<const std::int64_t>(sb.begin(), sb.end() - 2)), "matmul");
  return {m, ka, n, batch};
}

/// C = op(A) op(B) for operands of rank >= 2 with broadcast batch axes.
Tensor matmul_nd(const Tensor& a, const Tensor& b, MatmulOptions o) {
  const MatmulDims d = check_dims(a, b, o);
  std::array<std::int64_t, Shape::kMaxRank> out_dims{};
  const int batch_rank = d.batch.rank();
  std::copy(d.batch.begin(), d.batch.end(), out_dims.begin());
  out_dims[static_cast<std::size_t>(batch_rank)] = d.m;
  out_dims[static_cast<std::size_t>(batch_rank) + 1] = d.n;
  Tensor out = detail::empty(Shape(std::span<const std::int64_t>(out_dims.data(), static_cast<std::size_t>(batch_rank) + 2)),
                             DType::float32);
  float* pc = detail::mutable_data<float>(out);
  const float* pa = data<float>(a);
  const float* pb = data<float>(b);
  const Shape &sa = a.shape(), &sb = b.shape();
  const std::int64_t lda = sa[sa.rank() - 1], ldb = sb[sb.rank() - 1];
  if (d.k == 0) {
    std::fill_n(pc, out.size(), 0.0f);
  } else if (sb.rank() == 2 && !o.transpose_a) {
    // Batch axes of a fold into M: one GEMM.
    const std::int64_t rows = a.size() / d.k;
    backend::sgemm(false, o.transpose_b, rows, d.n, d.k, pa, lda, pb, ldb, 0.0f, pc, d.n);
  } else {
    const std::int64_t batches = d.batch.numel();
    const int rank = d.batch.rank();
    // Offsets of each operand's matrix for a batch index (0 stride on broadcast axes).
    auto offsets = [&](std::int64_t bi, std::int64_t& oa, std::int64_t& ob) {
      oa = ob = 0;
      std::int64_t ca = sa[sa.rank() - 1] * sa[sa.rank() - 2], cb = sb[sb.rank() - 1] * sb[sb.rank() - 2];
      for (int i = rank - 1; i >= 0; --i) {
        const std::int64_t idx = bi % d.batch[i];
        bi /= d.batch[i];
        const int ia = sa.rank() - 2 - rank + i, ib = sb.rank() - 2 - rank + i;
        const std::int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
        if (da != 1) oa += idx * ca;
        if (db != 1) ob += idx * cb;
        ca *= da;
        cb *= db;
      }
    };
    // m * n and k each fit (they are sizes of tensors that exist); their product need not.
    const std::int64_t work =
        detail::checked_product(std::array{d.m, d.n, d.k}).value_or(std::numeric_limits<std::int64_t>::max());
    auto run = [&](std::int64_t b0, std::int64_t b1) {
      for (std::int64_t bi = b0; bi < b1; ++bi) {
        std::int64_t oa, ob;
        offsets(bi, oa, ob);
        backend::sgemm(o.transpose_a, o.transpose_b, d.m, d.n, d.k, pa + oa, lda, pb + ob, ldb, 0.0f,
                       pc + bi * d.m * d.n, d.n);
      }
    };
    // Many small products: one thread per batch slice; few large ones: the backend threads each.
    if (work < (1 << 20))
      detail::parallel_for(batches, std::max<std::int64_t>(1, (1 << 16) / std::max<std::int64_t>(work, 1)), run);
    else
      run(0, batches);
  }
  if (autodiff::any_tracked(a, b)) {
    const bool need_a = detail::node_of(a) != nullptr, need_b = detail::node_of(b) != nullptr;
    autodiff::record_ops(out, "matmul", {&a, &b}, [va = detach(a), vb = detach(b), o, need_a, need_b](const Tensor& g,
                                                                                               std::span<Tensor> gr) {
      if (need_a) {
        const Tensor ga = o.transpose_a ? matmul(vb, g, {o.transpose_b, true}) : matmul(g, vb, {false, !o.transpose_b});
        gr[0] = detail::sum_to_shape(ga, va.shape());
      }
      if (need_b) {
        if (vb.rank() == 2 && !o.transpose_a && va.rank() > 2) {
          // b was shared by every batch slice: fold the batch into the contraction.
          const std::int64_t k = va.shape()[va.rank() - 1], n = g.shape()[g.rank() - 1];
          const Tensor a2 = reshape(va, Shape{va.size() / k, k});
          const Tensor g2 = reshape(g, Shape{g.size() / n, n});
          gr[1] = o.transpose_b ? matmul(g2, a2, {true, false}) : matmul(a2, g2, {true, false});
        } else {
          const Tensor gb = o.transpose_b ? matmul(g, va, {true, o.transpose_a}) : matmul(va, g, {!o.transpose_a, false});
          gr[1] = detail::sum_to_shape(gb, vb.shape());
        }
      }
    });
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, MatmulOptions options) {
  // Lowered for weft::jit where matmul_nd makes one GEMM: b a matrix, and a a matrix or (not
  // transposed) a batch of rows folded into M; the same backend call as matmul_nd's.
  const auto lower = [options](const Tensor& a, const Tensor& b, const Tensor& out) -> detail::JitKernel {
    if (b.rank() != 2 || a.rank() < 2 || (options.transpose_a && a.rank() != 2)) return {};
    const Shape &sa = a.shape(), &sb = b.shape();
    const std::int64_t k = options.transpose_a ? sa[0] : sa[sa.rank() - 1];
    if (k == 0) return {};
    const std::int64_t n = out.shape()[out.rank() - 1];
    const std::int64_t rows = options.transpose_a ? sa[1] : a.size() / k;
    const std::int64_t lda = sa[sa.rank() - 1], ldb = sb[1];
    detail::JitKernel kernel{[=](const void* const* in, void* const* o) {
                               backend::sgemm(options.transpose_a, options.transpose_b, rows, n, k,
                                              static_cast<const float*>(in[0]), lda, static_cast<const float*>(in[1]),
                                              ldb, 0.0f, static_cast<float*>(o[0]), n);
                             },
                             {},
                             true};
    kernel.identity = fmt::format("transpose {} {}", options.transpose_a, options.transpose_b);
    return kernel;
  };
  return detail::traced_lowered("matmul", [=](const Tensor& a, const Tensor& b) -> Tensor {
    detail::require_float(a, "matmul");
    detail::require_float(b, "matmul");
    if (a.rank() == 0 || b.rank() == 0)
      throw ShapeError(fmt::format("weft::matmul: operands must have at least one axis, got "
                                   "shapes {}; use * to scale by a scalar", detail::shapes_str(a.shape(), b.shape())));
    if ((a.rank() == 1 && options.transpose_a) || (b.rank() == 1 && options.transpose_b))
      throw ShapeError(fmt::format("weft::matmul: a 1-D operand cannot be transposed (shapes {})",
                                   detail::shapes_str(a.shape(), b.shape())));
    if (a.rank() >= 2 && b.rank() >= 2) return matmul_nd(a, b, options);
    // NumPy promotion of 1-D operands; the reshapes record their own gradients.
    const Tensor a2 = a.rank() == 1 ? reshape(a, Shape{1, a.shape()[0]}) : a;
    const Tensor b2 = b.rank() == 1 ? reshape(b, Shape{b.shape()[0], 1}) : b;
    const Tensor c = matmul_nd(a2, b2, options);
    std::vector<std::int64_t> dims = c.shape().to_vector();
    if (b.rank() == 1) dims.erase(dims.end() - 1);
    if (a.rank() == 1) dims.erase(dims.end() - (b.rank() == 1 ? 1 : 2));
    return reshape(c, Shape(dims));
  }, lower, a, b);
}

}  // namespace weft
