#pragma once
// Linear modules: nn::Dense (math in core::dense).
#include "weft/core/linear.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

struct Dense {
  required<std::int64_t> features;
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();

  Tensor operator()(Scope& s, const Tensor& x) const {
    return core::dense(core::DenseOptions{.features = features,
                                          .use_bias = use_bias,
                                          .kernel_init = kernel_init,
                                          .bias_init = bias_init},
                       s, x);
  }
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::Dense, features, use_bias, kernel_init, bias_init);
