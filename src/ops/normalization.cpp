// Fused normalisation kernels (forward and backward) over the last axis, called by core::layer_norm
// and core::batch_norm.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "../row_math.hpp"
#include "fused.hpp"
#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft::detail {

namespace {

/// Rows per parallel chunk of the fused layer norm: a fixed count, so partial sums of the
/// gradients of scale and bias combine in the same order on any thread count.
constexpr std::int64_t kRowsPerChunk = 64;

/// Per-channel partial sums over the rows of a (rows, c) view: one block of `terms` * c floats per
/// chunk of kRowsPerChunk rows, into which add_row(r, block) adds row r's terms. Chunks run on any
/// thread; callers combine the blocks in chunk order, so sums do not depend on the thread count.
template <class AddRow>
std::vector<float> chunk_sums(std::int64_t rows, std::int64_t c, std::int64_t terms, std::int64_t grain, AddRow add_row) {
  const std::int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<float> partial(static_cast<std::size_t>(terms * chunks * c), 0.0f);
  weft::detail::parallel_for(chunks, grain, [&](std::int64_t k0, std::int64_t k1) {
    for (std::int64_t k = k0; k < k1; ++k)
      for (std::int64_t r = k * kRowsPerChunk; r < std::min(rows, (k + 1) * kRowsPerChunk); ++r)
        add_row(r, partial.data() + k * terms * c);
  });
  return partial;
}

/// Channel i's total of term t in chunk_sums' blocks, combined in chunk order in double.
double chunk_total(const std::vector<float>& partial, std::int64_t c, std::int64_t terms, std::int64_t t, std::int64_t i) {
  double total = 0;
  for (std::size_t at = static_cast<std::size_t>(t * c + i); at < partial.size(); at += static_cast<std::size_t>(terms * c))
    total += partial[at];
  return total;
}

}  // namespace

// Layer norm: two passes over each row (mean, then centred variance, more accurate than Flax's
// E[x^2] - E[x]^2; equal up to rounding), then the output. Saves each row's mean and 1/std for
// the gradient.
namespace {

/// Layer norm of `rows` rows of c channels of px into py, each row's (mean, rstd) into st; ps and
/// pb null when absent.
void layer_norm_into(const float* px, const float* ps, const float* pb, float* py, float* st, std::int64_t rows,
                     std::int64_t c, float epsilon) {
  weft::detail::parallel_for(rows, std::max<std::int64_t>(1, weft::detail::kParallelGrain / std::max<std::int64_t>(c, 1)),
                             [&](std::int64_t r0, std::int64_t r1) {
                               for (std::int64_t r = r0; r < r1; ++r) {
                                 const float* xr = px + r * c;
                                 float* yr = py + r * c;
                                 // Lane sums: vectorised, and in a fixed order (deterministic).
                                 const float mean =
                                     weft::detail::lanes_accumulate(c, [&](std::int64_t i) { return xr[i]; }) /
                                     static_cast<float>(c);
                                 const float sq = weft::detail::lanes_accumulate(c, [&](std::int64_t i) {
                                   const float d = xr[i] - mean;
                                   return d * d;
                                 });
                                 const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(c) + epsilon);
                                 if (ps && pb) {
                                   for (std::int64_t i = 0; i < c; ++i) yr[i] = (xr[i] - mean) * rstd * ps[i] + pb[i];
                                 } else {
                                   for (std::int64_t i = 0; i < c; ++i) {
                                     float v = (xr[i] - mean) * rstd;
                                     if (ps) v *= ps[i];
                                     if (pb) v += pb[i];
                                     yr[i] = v;
                                   }
                                 }
                                 st[2 * r] = mean;
                                 st[2 * r + 1] = rstd;
                               }
                             });
}

/// The gradient of layer_norm_into's y given g: dx into pdx (skipped when null), dscale and dbias
/// into pdscale and pdbias; ps null without a scale.
void layer_norm_grad_into(const float* pg, const float* px, const float* ps, const float* st, float* pdx,
                          float* pdscale, float* pdbias, std::int64_t rows, std::int64_t c) {
  // Per chunk: the sums of dscale's terms, then dbias's.
  const std::vector<float> partial = chunk_sums(rows, c, 2, 1, [&](std::int64_t r, float* block) {
    float* ds = block;
    float* db = block + c;
    const float* xr = px + r * c;
    const float* gr = pg + r * c;
    const float mean = st[2 * r], rstd = st[2 * r + 1];
    float m1 = 0.0f, m2 = 0.0f;  // mean of dxhat, mean of dxhat * xhat
    for (std::int64_t i = 0; i < c; ++i) {
      const float xhat = (xr[i] - mean) * rstd;
      const float dxhat = ps ? gr[i] * ps[i] : gr[i];
      ds[i] += gr[i] * xhat;
      db[i] += gr[i];
      m1 += dxhat;
      m2 += dxhat * xhat;
    }
    if (!pdx) return;
    m1 /= static_cast<float>(c);
    m2 /= static_cast<float>(c);
    float* dr = pdx + r * c;
    for (std::int64_t i = 0; i < c; ++i) {
      const float xhat = (xr[i] - mean) * rstd;
      const float dxhat = ps ? gr[i] * ps[i] : gr[i];
      dr[i] = rstd * (dxhat - m1 - xhat * m2);
    }
  });
  // Chunk sums combined in chunk order, in float: independent of the thread count.
  std::fill_n(pdscale, c, 0.0f);
  std::fill_n(pdbias, c, 0.0f);
  for (std::size_t k = 0; k < partial.size(); k += static_cast<std::size_t>(2 * c))
    for (std::int64_t i = 0; i < c; ++i) {
      pdscale[i] += partial[k + static_cast<std::size_t>(i)];
      pdbias[i] += partial[k + static_cast<std::size_t>(c + i)];
    }
}

/// The gradients a norm's gradient op returns, (dscale, dbias) after dx where x needs one (a
/// plan's outputs are fixed by its trace, so an unneeded dx is not made at all); into `grads`.
void assign_norm_grads(const std::vector<Tensor>& r, bool need_x, std::span<Tensor> grads) {
  std::size_t k = 0;
  if (need_x) grads[0] = r[k++];
  grads[1] = r[k++];
  grads[2] = r[k];
}

/// (dx, dscale, dbias) of layer_norm_into (dx only when `need_x`): one op, which a weft::jit plan
/// runs as a kernel.
std::vector<Tensor> layer_norm_grad(const Tensor& g, const Tensor& x, const Tensor& scale, const Tensor& stats,
                                    bool need_x) {
  const auto lower = [need_x](const Tensor&, const Tensor& x, const Tensor&, const Tensor&,
                              const std::vector<Tensor>&) {
    const std::int64_t c = x.shape()[x.rank() - 1], rows = c == 0 ? 0 : x.size() / c;
    return JitKernel{[need_x, rows, c](const void* const* in, void* const* out) {
      const int d = need_x ? 1 : 0;
      layer_norm_grad_into(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]),
                           static_cast<const float*>(in[2]), static_cast<const float*>(in[3]),
                           need_x ? static_cast<float*>(out[0]) : nullptr, static_cast<float*>(out[d]),
                           static_cast<float*>(out[d + 1]), rows, c);
    }};
  };
  return traced_lowered(
      "layer_norm_grad",
      [need_x](const Tensor& g, const Tensor& x, const Tensor& scale, const Tensor& stats) {
        const std::int64_t c = x.shape()[x.rank() - 1], rows = c == 0 ? 0 : x.size() / c;
        std::vector<Tensor> r;
        if (need_x) r.push_back(weft::detail::empty(x.shape(), DType::float32));
        r.push_back(weft::detail::empty(Shape{c}, DType::float32));
        r.push_back(weft::detail::empty(Shape{c}, DType::float32));
        const std::size_t d = need_x ? 1 : 0;
        layer_norm_grad_into(data<float>(g), data<float>(x), scale.defined() ? data<float>(scale) : nullptr,
                             data<float>(stats), need_x ? mutable_data<float>(r[0]) : nullptr,
                             mutable_data<float>(r[d]), mutable_data<float>(r[d + 1]), rows, c);
        return r;
      },
      lower, g, x, scale, stats);
}

}  // namespace

Tensor layer_norm_last_axis(const Tensor& x, const Tensor& scale, const Tensor& bias, float epsilon) {
  const std::int64_t c = x.shape()[x.rank() - 1];
  const std::int64_t rows = c == 0 ? 0 : x.size() / c;
  const auto lower = [rows, c, epsilon](const Tensor&, const Tensor&, const Tensor&, const std::array<Tensor, 2>&) {
    return JitKernel{[rows, c, epsilon](const void* const* in, void* const* out) {
      layer_norm_into(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]),
                      static_cast<const float*>(in[2]), static_cast<float*>(out[0]), static_cast<float*>(out[1]),
                      rows, c, epsilon);
    }};
  };
  // One op with two outputs: y, and each row's (mean, rstd), which the gradient reads.
  const std::array<Tensor, 2> out = traced_lowered(
      "layer_norm",
      [rows, c, epsilon](const Tensor& x, const Tensor& scale, const Tensor& bias) {
        std::array<Tensor, 2> r{weft::detail::empty(x.shape(), DType::float32),
                                weft::detail::empty(Shape{rows, 2}, DType::float32)};
        layer_norm_into(data<float>(x), scale.defined() ? data<float>(scale) : nullptr,
                        bias.defined() ? data<float>(bias) : nullptr, mutable_data<float>(r[0]),
                        mutable_data<float>(r[1]), rows, c, epsilon);
        return r;
      },
      lower, weft::detail::detach(x), weft::detail::detach(scale), weft::detail::detach(bias));
  Tensor y = out[0];
  if (autodiff::any_tracked(x, scale, bias)) {
    const bool need_x = weft::detail::node_of(x) != nullptr;
    autodiff::record_ops(y, "layer_norm", {&x, &scale, &bias},
                         [vx = weft::detail::detach(x), vs = scale.defined() ? weft::detail::detach(scale) : Tensor{},
                          stats = out[1], need_x](const Tensor& g, std::span<Tensor> grads) {
                           assign_norm_grads(layer_norm_grad(g, vx, vs, stats, need_x), need_x, grads);
                         });
  }
  return y;
}

// Batch norm: pivoted per-chunk sums for the statistics (see fused.hpp for why), then one pass for
// the output; the gradient is two passes.
namespace {

BatchNormOut batch_norm_kernel(const Tensor& x, const Tensor& scale, const Tensor& bias, float epsilon);
void batch_norm_into(const float* px, const float* ps, const float* pb, float* py, float* pmean, float* pvar,
                     std::int64_t rows, std::int64_t c, float epsilon);

}  // namespace

BatchNormOut batch_norm_last_axis(const Tensor& x, const Tensor& scale, const Tensor& bias, float epsilon) {
  const auto lower = [epsilon](const Tensor& x, const Tensor&, const Tensor&, const std::array<Tensor, 3>&) {
    const std::int64_t c = x.shape()[x.rank() - 1], rows = x.size() / c;
    return JitKernel{[rows, c, epsilon](const void* const* in, void* const* out) {
      batch_norm_into(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]),
                      static_cast<const float*>(in[2]), static_cast<float*>(out[0]), static_cast<float*>(out[1]),
                      static_cast<float*>(out[2]), rows, c, epsilon);
    }};
  };
  const auto r = traced_lowered(
      "batch_norm",
      [epsilon](const Tensor& x, const Tensor& scale, const Tensor& bias) {
        BatchNormOut o = batch_norm_kernel(x, scale, bias, epsilon);
        return std::array<Tensor, 3>{std::move(o.y), std::move(o.mean), std::move(o.var)};
      },
      lower, x, scale, bias);
  return {r[0], r[1], r[2]};
}

namespace {

/// The gradient of batch_norm_kernel's y into pdx (skipped when null), pdscale and pdbias, for
/// `rows` rows of c channels; ps null without a scale. rstd is formed from var as the forward pass
/// forms it; the per-channel sums are chunked as its own.
void batch_norm_grad_into(const float* pg, const float* px, const float* pm, const float* pv, const float* ps,
                          float* pdx, float* pdscale, float* pdbias, std::int64_t rows, std::int64_t c, float epsilon) {
  const std::int64_t chunk_grain = std::max<std::int64_t>(1, weft::detail::kParallelGrain / (kRowsPerChunk * c));
  // Per-channel sums of g and g * (x - mean), chunked as the forward.
  const std::vector<float> partial = chunk_sums(rows, c, 2, chunk_grain, [&](std::int64_t r, float* block) {
    float* __restrict sg = block;
    float* __restrict sgx = block + c;
    const float* __restrict gr = pg + r * c;
    const float* __restrict xr = px + r * c;
#pragma omp simd
    for (std::int64_t i = 0; i < c; ++i) {
      sg[i] += gr[i];
      sgx[i] += gr[i] * (xr[i] - pm[i]);
    }
  });
  std::vector<float> k1(static_cast<std::size_t>(c)), k2(static_cast<std::size_t>(c)), k3(static_cast<std::size_t>(c));
  const auto n = static_cast<double>(rows);
  for (std::int64_t i = 0; i < c; ++i) {
    const double sg = chunk_total(partial, c, 2, 0, i), sgx = chunk_total(partial, c, 2, 1, i);
    const auto u = static_cast<std::size_t>(i);
    const double r = 1.0f / std::sqrt(pv[i] + epsilon), sc = ps ? ps[i] : 1.0;
    pdbias[i] = static_cast<float>(sg);
    pdscale[i] = static_cast<float>(r * sgx);
    // dx = scale * rstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = (x - mean) * rstd:
    // k1 * g + k2 * (x - mean) + k3 per channel.
    k1[u] = static_cast<float>(sc * r);
    k2[u] = static_cast<float>(-sc * r * r * r * sgx / n);
    k3[u] = static_cast<float>(-sc * r * sg / n);
  }
  if (pdx == nullptr) return;
  weft::detail::parallel_for(rows, std::max<std::int64_t>(1, weft::detail::kParallelGrain / c),
                             [&](std::int64_t r0, std::int64_t r1) {
                               const float* __restrict a1 = k1.data();
                               const float* __restrict a2 = k2.data();
                               const float* __restrict a3 = k3.data();
                               for (std::int64_t r = r0; r < r1; ++r) {
                                 const float* __restrict gr = pg + r * c;
                                 const float* __restrict xr = px + r * c;
                                 float* __restrict dr = pdx + r * c;
#pragma omp simd
                                 for (std::int64_t i = 0; i < c; ++i) dr[i] = a1[i] * gr[i] + a2[i] * (xr[i] - pm[i]) + a3[i];
                               }
                             });
}

/// (dx, dscale, dbias) as tensors, dx only when `need_x`.
std::vector<Tensor> batch_norm_grad(const Tensor& g, const Tensor& vx, const Tensor& vm, const Tensor& vv,
                                    const Tensor& vs, float epsilon, bool need_x) {
  const std::int64_t c = vx.shape()[vx.rank() - 1];
  std::vector<Tensor> r;
  if (need_x) r.push_back(weft::detail::empty(vx.shape(), DType::float32));
  r.push_back(weft::detail::empty(Shape{c}, DType::float32));
  r.push_back(weft::detail::empty(Shape{c}, DType::float32));
  const std::size_t d = need_x ? 1 : 0;
  batch_norm_grad_into(data<float>(g), data<float>(vx), data<float>(vm), data<float>(vv),
                       vs.defined() ? data<float>(vs) : nullptr, need_x ? mutable_data<float>(r[0]) : nullptr,
                       mutable_data<float>(r[d]), mutable_data<float>(r[d + 1]), vx.size() / c, c, epsilon);
  return r;
}

/// batch_norm_grad lowered for weft::jit plans: its outputs in order (dx first when `need_x`).
JitKernel lower_batch_norm_grad(const Tensor& x, float epsilon, bool need_x) {
  const std::int64_t c = x.shape()[x.rank() - 1], rows = x.size() / c;
  return {[rows, c, epsilon, need_x](const void* const* in, void* const* out) {
    batch_norm_grad_into(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]),
                         static_cast<const float*>(in[2]), static_cast<const float*>(in[3]),
                         static_cast<const float*>(in[4]), need_x ? static_cast<float*>(out[0]) : nullptr,
                         static_cast<float*>(out[need_x ? 1 : 0]), static_cast<float*>(out[need_x ? 2 : 1]), rows, c,
                         epsilon);
  }};
}

/// Batch norm over the rows of px (`rows` rows of c channels, rows > 0) into py, with the batch
/// mean and var into pmean and pvar; ps and pb null when absent.
void batch_norm_into(const float* px, const float* ps, const float* pb, float* py, float* pmean, float* pvar,
                     std::int64_t rows, std::int64_t c, float epsilon) {
  const std::int64_t chunk_grain = std::max<std::int64_t>(1, weft::detail::kParallelGrain / (kRowsPerChunk * c));
  std::vector<float> pivot(static_cast<std::size_t>(c), 0.0f);
  {
    const std::int64_t first = std::min(rows, kRowsPerChunk);
    std::vector<double> sum(static_cast<std::size_t>(c), 0.0);
    for (std::int64_t r = 0; r < first; ++r)
      for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += px[r * c + static_cast<std::int64_t>(i)];
    for (std::size_t i = 0; i < sum.size(); ++i) pivot[i] = static_cast<float>(sum[i] / static_cast<double>(first));
  }
  const std::vector<float> partial = chunk_sums(rows, c, 2, chunk_grain, [&](std::int64_t r, float* block) {
    float* __restrict s = block;
    float* __restrict q = block + c;
    const float* __restrict xr = px + r * c;
    const float* __restrict pp = pivot.data();
#pragma omp simd
    for (std::int64_t i = 0; i < c; ++i) {
      const float d = xr[i] - pp[i];
      s[i] += d;
      q[i] += d * d;
    }
  });
  std::vector<float> a(static_cast<std::size_t>(c)), b(static_cast<std::size_t>(c)), rstd(static_cast<std::size_t>(c));
  for (std::int64_t i = 0; i < c; ++i) {
    const double sum = chunk_total(partial, c, 2, 0, i), sq = chunk_total(partial, c, 2, 1, i);
    const double shift = sum / static_cast<double>(rows);  // mean(d)
    const double m = pivot[static_cast<std::size_t>(i)] + shift;
    const double v = std::max(0.0, sq / static_cast<double>(rows) - shift * shift);
    pmean[i] = static_cast<float>(m);
    pvar[i] = static_cast<float>(v);
    const auto u = static_cast<std::size_t>(i);
    rstd[u] = 1.0f / std::sqrt(static_cast<float>(v) + epsilon);
    a[u] = ps ? rstd[u] * ps[i] : rstd[u];
    b[u] = pb ? pb[i] : 0.0f;
  }
  weft::detail::parallel_for(rows, std::max<std::int64_t>(1, weft::detail::kParallelGrain / c), [&](std::int64_t r0, std::int64_t r1) {
    const float* __restrict pa = a.data();
    const float* __restrict pbb = b.data();
    const float* __restrict pm = pmean;
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* __restrict xr = px + r * c;
      float* __restrict yr = py + r * c;
#pragma omp simd
      for (std::int64_t i = 0; i < c; ++i) yr[i] = (xr[i] - pm[i]) * pa[i] + pbb[i];
    }
  });
}

BatchNormOut batch_norm_kernel(const Tensor& x, const Tensor& scale, const Tensor& bias, float epsilon) {
  const std::int64_t c = x.shape()[x.rank() - 1];
  const std::int64_t rows = c == 0 ? 0 : x.size() / c;
  if (rows == 0)
    throw ShapeError(fmt::format("weft::core::batch_norm: the input of shape {} has no "
                                 "elements to take batch statistics over", x.shape().str()));
  Tensor mean = weft::detail::empty(Shape{c}, DType::float32), var = weft::detail::empty(Shape{c}, DType::float32);
  Tensor y = weft::detail::empty(x.shape(), DType::float32);
  batch_norm_into(data<float>(x), scale.defined() ? data<float>(scale) : nullptr,
                  bias.defined() ? data<float>(bias) : nullptr, mutable_data<float>(y), mutable_data<float>(mean),
                  mutable_data<float>(var), rows, c, epsilon);
  if (autodiff::any_tracked(x, scale, bias)) {
    const bool need_x = weft::detail::node_of(x) != nullptr;
    // The gradient is an op of its own (weft::jit records it): it reads the op's input, scale and
    // its mean and var outputs, and forms rstd again from var, as above (the same float).
    autodiff::record_ops(
        y, "batch_norm", {&x, &scale, &bias},
        [vx = weft::detail::detach(x), vm = mean, vv = var, vs = scale.defined() ? weft::detail::detach(scale) : Tensor{},
         epsilon, need_x](const Tensor& g, std::span<Tensor> grads) {
          assign_norm_grads(
              traced_lowered(
                  "batch_norm_grad",
                  [epsilon, need_x](const Tensor& g, const Tensor& x, const Tensor& m, const Tensor& v,
                                    const Tensor& s) { return batch_norm_grad(g, x, m, v, s, epsilon, need_x); },
                  [epsilon, need_x](const Tensor&, const Tensor& x, const Tensor&, const Tensor&, const Tensor&,
                                    const std::vector<Tensor>&) { return lower_batch_norm_grad(x, epsilon, need_x); },
                  g, vx, vm, vv, vs),
              need_x, grads);
        });
  }
  return {y, mean, var};
}

}  // namespace


}  // namespace weft::detail
