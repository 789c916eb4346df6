#include "weft/core/stochastic.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "../autodiff/node.hpp"
#include "../random_internal.hpp"
#include "../tensor_impl.hpp"
#include "weft/ops.hpp"

namespace weft::core {

namespace {

/// y = x / keep where unit_float(bits) < keep, else 0; the bits are random_bits(key, n), drawn tile by
/// tile without storing them. When `mask` is given it receives the kept flags (for the gradient).
void dropout_kernel(Key key, float keep, const float* x, float* y, std::uint8_t* mask, std::int64_t n) {
  weft::detail::for_each_bits(key, n, [=](std::int64_t off, const std::uint32_t* bits, std::int64_t count) {
    // Everything the loops read is a local value or a restrict pointer: with a captured reference
    // the compiler must assume each store may change `keep`, and the loops stay scalar.
    const float k = keep;
    const float* __restrict px = x + off;
    float* __restrict py = y + off;
#pragma omp simd
    for (std::int64_t i = 0; i < count; ++i) py[i] = (weft::detail::unit_float(bits[i]) < k ? px[i] : 0.0f) / k;
    if (mask) {
      std::uint8_t* __restrict pm = mask + off;
#pragma omp simd
      for (std::int64_t i = 0; i < count; ++i) pm[i] = static_cast<std::uint8_t>(weft::detail::unit_float(bits[i]) < k);
    }
  });
}

/// dx = g / keep where kept, else 0.
void dropout_backward_kernel(const float* g, const std::uint8_t* mask, float keep, float* dx, std::int64_t n) {
  weft::detail::parallel_for(n, weft::detail::kParallelGrain, [=](std::int64_t b, std::int64_t e) {
    const float k = keep;
    const float* __restrict pg = g;
    const std::uint8_t* __restrict pm = mask;
    float* __restrict pd = dx;
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) pd[i] = (pm[i] != 0 ? pg[i] : 0.0f) / k;
  });
}

}  // namespace

Tensor dropout_fn::operator()(const DropoutOptions& options, Scope& scope, const Tensor& x,
                              std::optional<Key> rng) const {
  const float rate = options.rate;
  if (!(rate >= 0.0f && rate <= 1.0f))
    throw ValueError("weft::core::dropout: rate " + std::to_string(rate) + " (in scope \"" + scope.path_str() +
                     "\") is not a probability; use a rate in [0, 1]");
  weft::detail::require_float(x, "core::dropout");
  if (options.deterministic || rate == 0.0f) return x;
  // Zeros (Flax's zeros_like), not x * 0, which is NaN where x is infinite or NaN; the output does
  // not depend on x, so its gradient is zero (not NaN).
  if (rate == 1.0f) return zeros(x.shape());
  const float keep = 1.0f - rate;
  const Key key = rng ? *rng : scope.make_rng(options.rng_collection);

  if (!options.broadcast_dims.empty()) {
    // One mask value shared along the broadcast axes: draw the smaller mask, then broadcast it.
    std::vector<std::int64_t> mask_dims = x.shape().to_vector();
    for (int d : options.broadcast_dims) mask_dims[static_cast<std::size_t>(normalize_axis(d, x.rank(), "core::dropout"))] = 1;
    const Tensor mask = broadcast_to(bernoulli(key, keep, Shape(mask_dims)), x.shape());
    return where(mask, x / keep, zeros(Shape{}));
  }

  const std::int64_t n = x.size();
  Tensor y = weft::detail::empty(x.shape(), DType::float32);
  const bool tracked = autodiff::any_tracked(x);
  auto mask = tracked ? std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(n)) : nullptr;
  dropout_kernel(key, keep, weft::detail::data<float>(x), weft::detail::mutable_data<float>(y),
                 mask ? mask->data() : nullptr, n);
  if (tracked) {
    autodiff::record(y, "dropout", {&x}, [mask, keep](const Tensor& g, std::span<Tensor> grads) {
      Tensor dx = weft::detail::empty(g.shape(), DType::float32);
      dropout_backward_kernel(weft::detail::data<float>(g), mask->data(), keep, weft::detail::mutable_data<float>(dx),
                              g.size());
      grads[0] = dx;
    });
  }
  return y;
}

}  // namespace weft::core
