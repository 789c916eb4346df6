#pragma once
// Normalization layers of the functional core: layer_norm, batch_norm, group_norm, rms_norm (Flax's
// math and defaults; variables named scale, bias, and batch_stats mean, var).
#include <cstdint>
#include <vector>

#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"
#include "weft/record.hpp"

namespace weft::core {

struct LayerNormOptions {
  float epsilon = 1e-6f;
  bool use_bias = true;
  bool use_scale = true;
  Initializer bias_init = initializers::zeros();
  Initializer scale_init = initializers::ones();
  std::vector<int> reduction_axes = {-1};  ///< statistics over these axes; scale and bias over the last
};

struct layer_norm_fn {
  using options_type = LayerNormOptions;
  /// y = (x - mean) / sqrt(var + epsilon) * scale + bias, statistics over the reduction axes.
  Tensor operator()(const LayerNormOptions& options, Scope& scope, const Tensor& x) const;
};
inline constexpr layer_norm_fn layer_norm{};

struct BatchNormOptions {
  required<bool, "use_running_average"> use_running_average;  ///< true: normalise with the running statistics (eval)
  int axis = -1;                        ///< the feature axis; every other axis is reduced
  float momentum = 0.99f;
  float epsilon = 1e-5f;
  bool use_bias = true;
  bool use_scale = true;
  Initializer bias_init = initializers::zeros();
  Initializer scale_init = initializers::ones();
};

struct batch_norm_fn {
  using options_type = BatchNormOptions;
  /// Training (use_running_average false): normalise with the batch mean and biased variance and,
  /// unless initialising, update batch_stats mean/var as momentum * old + (1 - momentum) * batch
  /// (batch_stats must then be mutable). Eval: normalise with the running statistics.
  Tensor operator()(const BatchNormOptions& options, Scope& scope, const Tensor& x) const;
};
inline constexpr batch_norm_fn batch_norm{};

struct GroupNormOptions {
  std::int64_t num_groups = 32;  ///< must divide the number of channels (the last axis)
  float epsilon = 1e-6f;
  bool use_bias = true;
  bool use_scale = true;
  Initializer bias_init = initializers::zeros();
  Initializer scale_init = initializers::ones();
};

struct group_norm_fn {
  using options_type = GroupNormOptions;
  /// Flax's GroupNorm: the channels (last axis) are split into num_groups groups of consecutive
  /// channels; each group is normalised with the mean and biased variance over all non-batch axes
  /// (axes 1..rank-2 and its channels), then scale and bias (channels,) apply per channel.
  /// num_groups = 1 is LayerNorm over all non-batch axes; num_groups = channels is InstanceNorm.
  Tensor operator()(const GroupNormOptions& options, Scope& scope, const Tensor& x) const;
};
inline constexpr group_norm_fn group_norm{};

struct RMSNormOptions {
  float epsilon = 1e-6f;
  bool use_scale = true;
  Initializer scale_init = initializers::ones();
  std::vector<int> reduction_axes = {-1};  ///< the mean of squares over these axes
  std::vector<int> feature_axes = {-1};    ///< scale has the extents of these axes
};

struct rms_norm_fn {
  using options_type = RMSNormOptions;
  /// Flax's RMSNorm: y = x * (rsqrt(mean(x^2) + epsilon) * scale), the mean over the reduction axes
  /// (no centring and no bias); scale has the extents of the feature axes, in axis order.
  Tensor operator()(const RMSNormOptions& options, Scope& scope, const Tensor& x) const;
};
inline constexpr rms_norm_fn rms_norm{};

}  // namespace weft::core

WEFT_RECORD(weft::core::LayerNormOptions, epsilon, use_bias, use_scale, bias_init, scale_init, reduction_axes);
WEFT_RECORD(weft::core::BatchNormOptions, use_running_average, axis, momentum, epsilon, use_bias, use_scale, bias_init,
            scale_init);
WEFT_RECORD(weft::core::GroupNormOptions, num_groups, epsilon, use_bias, use_scale, bias_init, scale_init);
WEFT_RECORD(weft::core::RMSNormOptions, epsilon, use_scale, scale_init, reduction_axes, feature_axes);
