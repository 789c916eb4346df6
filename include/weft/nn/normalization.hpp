#pragma once
// Normalization modules: nn::LayerNorm, nn::BatchNorm, nn::GroupNorm, nn::RMSNorm (math in
// core::layer_norm, core::batch_norm, core::group_norm, core::rms_norm).
// BatchNorm's `use_running_average` may be an attribute or a call argument, exactly once.
#include <optional>
#include <vector>

#include "weft/core/normalization.hpp"
#include "weft/nn/core_options.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

struct LayerNorm {
  float epsilon = 1e-6f;
  bool use_bias = true;
  bool use_scale = true;
  Initializer bias_init = core::initializers::zeros();
  Initializer scale_init = core::initializers::ones();
  std::vector<int> reduction_axes = {-1};

  Tensor operator()(Scope& s, const Tensor& x) const;
};

struct BatchNorm {
  std::optional<bool> use_running_average{};
  int axis = -1;
  float momentum = 0.99f;
  float epsilon = 1e-5f;
  bool use_bias = true;
  bool use_scale = true;
  Initializer bias_init = core::initializers::zeros();
  Initializer scale_init = core::initializers::ones();

  Tensor operator()(Scope& s, const Tensor& x, std::optional<bool> use_running_average = std::nullopt) const;

  /// Call-time keywords: s(bn, x, "use_running_average"_kw = !train).
  struct CallKeywords {
    std::optional<bool> use_running_average{};
  };
  using call_keywords = CallKeywords;
  Tensor operator()(Scope& s, const Tensor& x, const CallKeywords& kw) const {
    return (*this)(s, x, kw.use_running_average);
  }
};

struct GroupNorm {
  std::int64_t num_groups = 32;
  float epsilon = 1e-6f;
  bool use_bias = true;
  bool use_scale = true;
  Initializer bias_init = core::initializers::zeros();
  Initializer scale_init = core::initializers::ones();

  Tensor operator()(Scope& s, const Tensor& x) const;
};

/// Root-mean-square normalisation without centring (Linen's RMSNorm).
struct RMSNorm {
  float epsilon = 1e-6f;
  bool use_scale = true;
  Initializer scale_init = core::initializers::ones();
  std::vector<int> reduction_axes = {-1};
  std::vector<int> feature_axes = {-1};

  Tensor operator()(Scope& s, const Tensor& x) const;
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::LayerNorm, epsilon, use_bias, use_scale, bias_init, scale_init, reduction_axes);
WEFT_RECORD(weft::nn::BatchNorm, use_running_average, axis, momentum, epsilon, use_bias, use_scale, bias_init,
            scale_init);
WEFT_RECORD(weft::nn::BatchNorm::CallKeywords, use_running_average);
WEFT_RECORD(weft::nn::GroupNorm, num_groups, epsilon, use_bias, use_scale, bias_init, scale_init);
WEFT_RECORD(weft::nn::RMSNorm, epsilon, use_scale, scale_init, reduction_axes, feature_axes);

// Defined after the records: nn::core_options reads both the module's and the options' fields.
namespace weft::nn {

inline Tensor LayerNorm::operator()(Scope& s, const Tensor& x) const {
  return core::layer_norm(core_options<core::LayerNormOptions>(*this), s, x);
}

inline Tensor BatchNorm::operator()(Scope& s, const Tensor& x, std::optional<bool> use_running_average) const {
  const bool running = merge_param("use_running_average", this->use_running_average, use_running_average);
  return core::batch_norm(core_options<core::BatchNormOptions>(*this, "use_running_average"_kw = running), s, x);
}

inline Tensor GroupNorm::operator()(Scope& s, const Tensor& x) const {
  return core::group_norm(core_options<core::GroupNormOptions>(*this), s, x);
}

inline Tensor RMSNorm::operator()(Scope& s, const Tensor& x) const {
  return core::rms_norm(core_options<core::RMSNormOptions>(*this), s, x);
}

}  // namespace weft::nn
