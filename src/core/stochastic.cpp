#include "weft/core/stochastic.hpp"

#include <string>
#include <vector>

#include <fmt/format.h>

#include "../ops/fused.hpp"
#include "../tensor_impl.hpp"
#include "weft/ops.hpp"

namespace weft::core {

Tensor dropout_fn::operator()(const DropoutOptions& options, Scope& scope, const Tensor& x,
                              std::optional<Key> rng) const {
  const float rate = options.rate;
  if (!(rate >= 0.0f && rate <= 1.0f))
    throw ValueError(fmt::format("weft::core::dropout: rate {:.6f} (in scope \"{}\") is not a probability; use a rate "
                                 "in [0, 1]",
                                 rate, scope.path_str()));
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

  return weft::detail::dropout(x, key, keep);
}

}  // namespace weft::core
