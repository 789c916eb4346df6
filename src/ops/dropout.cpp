// The fused dropout op (forward and backward), called by core::dropout.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "../random_internal.hpp"
#include "fused.hpp"
#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft::detail {

namespace {

/// y = x / keep where unit_float(bits) < keep, else 0; the bits are random_bits(key, n), drawn tile by
/// tile without storing them. When `mask` is given it receives the kept flags (for the gradient).
void dropout_kernel(Key key, float keep, const float* x, float* y, std::uint8_t* mask, std::int64_t n) {
  for_each_bits(key, n, [=](std::int64_t off, const std::uint32_t* bits, std::int64_t count) {
    // Everything the loops read is a local value or a restrict pointer: with a captured reference
    // the compiler must assume each store may change `keep`, and the loops stay scalar.
    const float k = keep;
    const float* __restrict px = x + off;
    float* __restrict py = y + off;
#pragma omp simd
    for (std::int64_t i = 0; i < count; ++i) py[i] = (unit_float(bits[i]) < k ? px[i] : 0.0f) / k;
    if (mask) {
      std::uint8_t* __restrict pm = mask + off;
#pragma omp simd
      for (std::int64_t i = 0; i < count; ++i) pm[i] = static_cast<std::uint8_t>(unit_float(bits[i]) < k);
    }
  });
}

/// dx = g / keep where kept, else 0.
void dropout_backward_kernel(const float* g, const std::uint8_t* mask, float keep, float* dx, std::int64_t n) {
  parallel_for(n, kParallelGrain, [=](std::int64_t b, std::int64_t e) {
    const float k = keep;
    const float* __restrict pg = g;
    const std::uint8_t* __restrict pm = mask;
    float* __restrict pd = dx;
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) pd[i] = (pm[i] != 0 ? pg[i] : 0.0f) / k;
  });
}

/// A key from the two words a weft::jit plan holds it as.
Key key_at(const void* words, ThreefryLayout layout) {
  const auto* w = static_cast<const std::int32_t*>(words);
  return Key::from_words({static_cast<std::uint32_t>(w[0]), static_cast<std::uint32_t>(w[1])}, layout);
}

/// dx = g / keep where the bits of `key` keep the element, else 0: the gradient as an op of its own,
/// the bits drawn again (what a weft::jit plan runs; eager mode keeps a byte mask instead). The
/// same values as dropout_backward_kernel over the mask the forward pass would have kept.
Tensor dropout_grad(const Tensor& g, Key key, float keep) {
  const auto run = [keep](Key k, const float* pg, float* pd, std::int64_t n) {
    for_each_bits(k, n, [=](std::int64_t off, const std::uint32_t* bits, std::int64_t count) {
      const float kp = keep;
      const float* __restrict src = pg + off;
      float* __restrict dst = pd + off;
#pragma omp simd
      for (std::int64_t i = 0; i < count; ++i) dst[i] = (unit_float(bits[i]) < kp ? src[i] : 0.0f) / kp;
    });
  };
  const auto lower = [run](const Tensor& g, Key key, const Tensor&) -> JitKernel {
    return {[run, n = g.size(), layout = key.layout()](const void* const* in, void* const* out) {
      run(key_at(in[1], layout), static_cast<const float*>(in[0]), static_cast<float*>(out[0]), n);
    }};
  };
  return traced_lowered(
      "dropout_grad",
      [run](const Tensor& g, Key key) {
        Tensor dx = empty(g.shape(), DType::float32);
        run(key, data<float>(g), mutable_data<float>(dx), g.size());
        return dx;
      },
      lower, g, key);
}

}  // namespace

Tensor dropout(const Tensor& x, Key key, float keep) {
  const auto lower = [keep](const Tensor& x, Key key, const Tensor&) -> JitKernel {
    return {[keep, n = x.size(), layout = key.layout()](const void* const* in, void* const* out) {
      dropout_kernel(key_at(in[1], layout), keep, static_cast<const float*>(in[0]), static_cast<float*>(out[0]),
                     nullptr, n);
    }};
  };
  return detail::traced_lowered("dropout", [=](const Tensor& x, Key key) -> Tensor {
    const std::int64_t n = x.size();
    Tensor y = empty(x.shape(), DType::float32);
    const bool tracked = autodiff::any_tracked(x);
    // Traced, the gradient is an op that draws the bits again (so the plan runs both as kernels);
    // eager, the forward pass keeps a byte mask, cheaper than drawing again.
    const bool keep_mask = tracked && active_tracer == nullptr;
    auto mask = keep_mask ? std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(n)) : nullptr;
    dropout_kernel(key, keep, data<float>(x), mutable_data<float>(y), mask ? mask->data() : nullptr, n);
    if (keep_mask) {
      autodiff::record(y, "dropout", {&x}, [mask, keep](const Tensor& g, std::span<Tensor> grads) {
        Tensor dx = empty(g.shape(), DType::float32);
        dropout_backward_kernel(data<float>(g), mask->data(), keep, mutable_data<float>(dx), g.size());
        grads[0] = dx;
      });
    } else if (tracked) {
      autodiff::record_ops(y, "dropout", {&x}, [key, keep](const Tensor& g, std::span<Tensor> grads) {
        grads[0] = dropout_grad(g, key, keep);
      });
    }
    return y;
  }, lower, x, key);
}

}  // namespace weft::detail
