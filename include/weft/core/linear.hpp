#pragma once
// Linear layers of the functional core: dense (Flax's Dense), dense_general, embed.
#include <cstdint>
#include <vector>

#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"
#include "weft/record.hpp"

namespace weft::core {

struct DenseOptions {
  required<std::int64_t> features;
  bool use_bias = true;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer bias_init = initializers::zeros();
};

struct dense_fn {
  using options_type = DenseOptions;
  /// y = x @ kernel + bias over x's last axis; kernel (in, features), bias (features,).
  Tensor operator()(const DenseOptions& options, Scope& scope, const Tensor& x) const;
  /// The same with only `features` given: `partial(core::dense, 128)`.
  Tensor operator()(std::int64_t features, Scope& scope, const Tensor& x) const {
    return (*this)(DenseOptions{.features = features}, scope, x);
  }
};
inline constexpr dense_fn dense{};

}  // namespace weft::core

WEFT_RECORD(weft::core::DenseOptions, features, use_bias, kernel_init, bias_init);
