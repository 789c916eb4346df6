#pragma once
// Convolution and pooling of the functional core: conv (Flax's Conv, 2-D, NHWC input, HWIO kernel),
// and max_pool / avg_pool with Flax's argument order (flax.linen.max_pool(inputs, window_shape,
// strides=None, padding='VALID')).
#include <cstdint>
#include <vector>

#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"
#include "weft/ops.hpp"
#include "weft/record.hpp"

namespace weft::core {

struct ConvOptions {
  required<std::int64_t, "features"> features;                  ///< output channels
  required<std::vector<std::int64_t>, "kernel_size"> kernel_size;  ///< (height, width)
  std::vector<std::int64_t> strides = {1, 1};
  Padding padding = "SAME";
  std::vector<std::int64_t> kernel_dilation = {1, 1};
  std::int64_t feature_group_count = 1;
  bool use_bias = true;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer bias_init = initializers::zeros();
};

struct conv_fn {
  using options_type = ConvOptions;
  /// y = conv2d(x, kernel) + bias: x (batch, height, width, in) or (height, width, in) (one image,
  /// as Flax adds and removes a batch axis), more leading axes are batch axes; kernel
  /// (kh, kw, in / feature_group_count, features), bias (features,).
  Tensor operator()(const ConvOptions& options, Scope& scope, const Tensor& x) const;
  /// The same with features and kernel size given: `partial(core::conv, 32, std::vector<std::int64_t>{3, 3})`.
  Tensor operator()(std::int64_t features, std::vector<std::int64_t> kernel_size, Scope& scope, const Tensor& x) const {
    return (*this)(ConvOptions{.features = features, .kernel_size = std::move(kernel_size)}, scope, x);
  }
};
inline constexpr conv_fn conv{};

/// Max pooling of (batch, height, width, channels) or (height, width, channels); empty strides
/// mean 1 along each axis.
[[nodiscard]] Tensor max_pool(const Tensor& x, std::vector<std::int64_t> window_shape,
                              std::vector<std::int64_t> strides = {}, Padding padding = "VALID");
/// Average pooling; with count_include_pad (Flax's default) padded elements count in the divisor.
[[nodiscard]] Tensor avg_pool(const Tensor& x, std::vector<std::int64_t> window_shape,
                              std::vector<std::int64_t> strides = {}, Padding padding = "VALID",
                              bool count_include_pad = true);

}  // namespace weft::core

WEFT_RECORD(weft::core::ConvOptions, features, kernel_size, strides, padding, kernel_dilation, feature_group_count,
            use_bias, kernel_init, bias_init);
