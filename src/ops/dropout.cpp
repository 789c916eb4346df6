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

}  // namespace

Tensor dropout(const Tensor& x, Key key, float keep) {
  return detail::traced("dropout", [=](const Tensor& x, Key key) -> Tensor {
    const std::int64_t n = x.size();
    Tensor y = empty(x.shape(), DType::float32);
    const bool tracked = autodiff::any_tracked(x);
    auto mask = tracked ? std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(n)) : nullptr;
    dropout_kernel(key, keep, data<float>(x), mutable_data<float>(y), mask ? mask->data() : nullptr, n);
    if (tracked) {
      autodiff::record(y, "dropout", {&x}, [mask, keep](const Tensor& g, std::span<Tensor> grads) {
        Tensor dx = empty(g.shape(), DType::float32);
        dropout_backward_kernel(data<float>(g), mask->data(), keep, mutable_data<float>(dx), g.size());
        grads[0] = dx;
      });
    }
    return y;
  }, x, key);
}

}  // namespace weft::detail
