#pragma once
// nn::Conv over 1, 2 or 3 spatial axes and nn::ConvTranspose (math in core::conv and
// core::conv_transpose). Pooling has no parameters: use core::max_pool / core::avg_pool (any of
// those ranks) or weft::max_pool / avg_pool (2-D) directly.
#include <vector>

#include "weft/core/conv.hpp"
#include "weft/nn/core_options.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

struct Conv {
  required<std::int64_t, "features"> features;
  required<std::vector<std::int64_t>, "kernel_size"> kernel_size;
  std::vector<std::int64_t> strides = {1};
  Padding padding = "SAME";
  std::vector<std::int64_t> kernel_dilation = {1};
  std::int64_t feature_group_count = 1;
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();

  Tensor operator()(Scope& s, const Tensor& x) const;
};

/// Linen's ConvTranspose.
struct ConvTranspose {
  required<std::int64_t, "features"> features;
  required<std::vector<std::int64_t>, "kernel_size"> kernel_size;
  std::vector<std::int64_t> strides = {1};
  Padding padding = "SAME";
  std::vector<std::int64_t> kernel_dilation = {1};
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();
  bool transpose_kernel = false;

  Tensor operator()(Scope& s, const Tensor& x) const;
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::ConvTranspose, features, kernel_size, strides, padding, kernel_dilation, use_bias, kernel_init,
            bias_init, transpose_kernel);
WEFT_RECORD(weft::nn::Conv, features, kernel_size, strides, padding, kernel_dilation, feature_group_count, use_bias,
            kernel_init, bias_init);

// Defined after the records: nn::core_options reads both the module's and the options' fields.
namespace weft::nn {

inline Tensor Conv::operator()(Scope& s, const Tensor& x) const {
  return core::conv(core_options<core::ConvOptions>(*this), s, x);
}

inline Tensor ConvTranspose::operator()(Scope& s, const Tensor& x) const {
  return core::conv_transpose(core_options<core::ConvTransposeOptions>(*this), s, x);
}

}  // namespace weft::nn
