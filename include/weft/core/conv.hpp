#pragma once
// Convolution and pooling of the functional core: conv (Flax's Conv over 1, 2 or 3 spatial axes,
// channels-last input NWC / NHWC / NDHWC, kernel spatial... x in x out), conv_transpose (Flax's
// ConvTranspose), and max_pool / avg_pool
// with Flax's argument order (flax.linen.max_pool(inputs, window_shape, strides=None,
// padding='VALID')), over as many spatial axes as window_shape has entries.
#include <cstdint>
#include <vector>

#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"
#include "weft/ops.hpp"
#include "weft/record.hpp"

namespace weft::core {

struct ConvOptions {
  required<std::int64_t, "features"> features;                  ///< output channels
  /// The spatial extents: (width), (height, width) or (depth, height, width).
  required<std::vector<std::int64_t>, "kernel_size"> kernel_size;
  std::vector<std::int64_t> strides = {1};  ///< one entry (Flax's int: every axis) or one per spatial axis
  Padding padding = "SAME";                 ///< "SAME", "VALID" or one (low, high) pair per spatial axis
  std::vector<std::int64_t> kernel_dilation = {1};  ///< as strides
  std::int64_t feature_group_count = 1;
  bool use_bias = true;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer bias_init = initializers::zeros();
};

struct conv_fn {
  using options_type = ConvOptions;
  /// y = conv(x, kernel) + bias with r = kernel_size.size() spatial axes (lax.conv_general_dilated,
  /// cross-correlation): x (batch..., spatial (r)..., in), or (spatial..., in) for one example (as
  /// Flax adds and removes a batch axis), more leading axes being batch axes; kernel
  /// (kernel_size..., in / feature_group_count, features), bias (features,). 2-D runs conv2d; 1-D
  /// runs it over a height of 1, and 3-D sums one conv2d per kernel depth over the strided depth
  /// slices of the zero-padded input, so gradients come from conv2d's.
  Tensor operator()(const ConvOptions& options, Scope& scope, const Tensor& x) const;
  /// The same with features and kernel size given: `partial(core::conv, 32, std::vector<std::int64_t>{3, 3})`.
  Tensor operator()(std::int64_t features, std::vector<std::int64_t> kernel_size, Scope& scope, const Tensor& x) const {
    return (*this)(ConvOptions{.features = features, .kernel_size = std::move(kernel_size)}, scope, x);
  }
};
inline constexpr conv_fn conv{};

struct ConvTransposeOptions {
  required<std::int64_t, "features"> features;                  ///< output channels
  /// The spatial extents: (width), (height, width) or (depth, height, width).
  required<std::vector<std::int64_t>, "kernel_size"> kernel_size;
  std::vector<std::int64_t> strides = {1};  ///< the input's dilation; one entry or one per spatial axis
  Padding padding = "SAME";  ///< "SAME", "VALID" (lax.conv_transpose's) or (low, high) pairs on the dilated input
  std::vector<std::int64_t> kernel_dilation = {1};
  bool use_bias = true;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer bias_init = initializers::zeros();
  /// false: the kernel is (kernel_size..., in, features) and used as it is (Flax's default); true:
  /// it is (kernel_size..., features, in), flipped spatially with its last two axes swapped, which
  /// makes the layer the gradient of a Conv with that kernel.
  bool transpose_kernel = false;
};

struct conv_transpose_fn {
  using options_type = ConvTransposeOptions;
  /// Flax's ConvTranspose, lax.conv_transpose: the input (batch..., spatial..., in) dilated by the
  /// strides (strides - 1 zeros between elements), padded (SAME: jax's _conv_transpose_padding,
  /// giving in * stride outputs; VALID: in * stride + max(k - stride, 0), k the dilated kernel
  /// extent), then convolved at stride 1 with kernel_dilation; plus bias (features,). Shapes as
  /// core::conv's (no feature groups, as Flax's ConvTranspose).
  Tensor operator()(const ConvTransposeOptions& options, Scope& scope, const Tensor& x) const;
};
inline constexpr conv_transpose_fn conv_transpose{};

/// Max pooling of (batch..., spatial..., channels) or (spatial..., channels), with as many spatial
/// axes as window_shape has entries (1, 2 or 3); empty strides mean 1 along each axis. Padded
/// positions are -inf (never the maximum unless a window holds nothing else). The gradient goes
/// to the first maximum of each window in row-major window order, as jax.grad of Flax's max_pool.
[[nodiscard]] Tensor max_pool(const Tensor& x, std::vector<std::int64_t> window_shape,
                              std::vector<std::int64_t> strides = {}, Padding padding = "VALID");
/// Average pooling of the same shapes; with count_include_pad (Flax's default) padded elements count
/// in the divisor.
[[nodiscard]] Tensor avg_pool(const Tensor& x, std::vector<std::int64_t> window_shape,
                              std::vector<std::int64_t> strides = {}, Padding padding = "VALID",
                              bool count_include_pad = true);

}  // namespace weft::core

WEFT_RECORD(weft::core::ConvTransposeOptions, features, kernel_size, strides, padding, kernel_dilation, use_bias,
            kernel_init, bias_init, transpose_kernel);
WEFT_RECORD(weft::core::ConvOptions, features, kernel_size, strides, padding, kernel_dilation, feature_group_count,
            use_bias, kernel_init, bias_init);
