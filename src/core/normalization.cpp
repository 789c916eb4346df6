#include "weft/core/normalization.hpp"

#include <string>
#include <vector>

#include <fmt/format.h>

#include "../ops/axes.hpp"
#include "../ops/fused.hpp"
#include "../tensor_impl.hpp"
#include "weft/ops.hpp"

namespace weft::core {

Tensor layer_norm_fn::operator()(const LayerNormOptions& options, Scope& scope, const Tensor& x) const {
  weft::detail::require_float(x, "core::layer_norm");
  if (x.rank() == 0) throw ShapeError("weft::core::layer_norm: needs an input with at least one axis, got a scalar");
  const std::int64_t c = x.shape()[x.rank() - 1];
  const Tensor scale = options.use_scale ? scope.param("scale", options.scale_init, Shape{c}) : Tensor{};
  const Tensor bias = options.use_bias ? scope.param("bias", options.bias_init, Shape{c}) : Tensor{};
  const auto axes = weft::detail::normalize_axes(Axes(options.reduction_axes), x.rank(), "core::layer_norm");
  if (axes.size() == 1 && axes[0] == x.rank() - 1) return weft::detail::layer_norm_last_axis(x, scale, bias, options.epsilon);
  // Other reduction axes: the same formula from ops.
  const Axes ax(std::vector<int>(axes.begin(), axes.end()));
  const Tensor mu = mean(x, ax, true);
  const Tensor centered = x - mu;
  Tensor y = centered * rsqrt(mean(square(centered), ax, true) + options.epsilon);
  if (scale.defined()) y = y * scale;
  if (bias.defined()) y = y + bias;
  return y;
}

Tensor batch_norm_fn::operator()(const BatchNormOptions& options, Scope& scope, const Tensor& x) const {
  weft::detail::require_float(x, "core::batch_norm");
  if (x.rank() < 2)
    throw ShapeError(fmt::format("weft::core::batch_norm: needs at least a batch axis and a feature axis, got shape {}",
                                 x.shape().str()));
  const int feature_axis = normalize_axis(options.axis, x.rank(), "core::batch_norm");
  const std::int64_t c = x.shape()[feature_axis];
  std::vector<int> reduce;
  std::vector<std::int64_t> stat_dims;  // the statistics, shaped to broadcast against x
  for (int i = 0; i < x.rank(); ++i) {
    if (i != feature_axis) reduce.push_back(i);
    stat_dims.push_back(i == feature_axis ? c : 1);
  }
  const Shape stat_shape(stat_dims);
  // Variables first, then parameters (Flax's order, which fixes the params rng counters).
  auto ra_mean = scope.variable("batch_stats", "mean", [c] { return zeros(Shape{c}); });
  auto ra_var = scope.variable("batch_stats", "var", [c] { return ones(Shape{c}); });
  if (!options.use_running_average && feature_axis == x.rank() - 1) {
    // The common case (NHWC, or (batch, features)): fused statistics, normalisation and gradient.
    const Tensor scale = options.use_scale ? scope.param("scale", options.scale_init, Shape{c}) : Tensor{};
    const Tensor bias = options.use_bias ? scope.param("bias", options.bias_init, Shape{c}) : Tensor{};
    auto out = weft::detail::batch_norm_last_axis(x, scale, bias, options.epsilon);
    if (!scope.is_initializing()) {
      const float m = options.momentum;
      ra_mean.set(ra_mean.value() * m + out.mean * (1.0f - m));
      ra_var.set(ra_var.value() * m + out.var * (1.0f - m));
    }
    return out.y;
  }
  Tensor mu, var;
  if (options.use_running_average) {
    mu = reshape(ra_mean.value(), stat_shape);
    var = reshape(ra_var.value(), stat_shape);
  } else {
    const Axes ax(reduce);
    mu = mean(x, ax, true);
    var = mean(square(x - mu), ax, true);  // biased, as Flax
    if (!scope.is_initializing()) {
      const float m = options.momentum;
      ra_mean.set(ra_mean.value() * m + reshape(stop_gradient(mu), Shape{c}) * (1.0f - m));
      ra_var.set(ra_var.value() * m + reshape(stop_gradient(var), Shape{c}) * (1.0f - m));
    }
  }
  Tensor y = (x - mu) * rsqrt(var + options.epsilon);
  if (options.use_scale) y = y * reshape(scope.param("scale", options.scale_init, Shape{c}), stat_shape);
  if (options.use_bias) y = y + reshape(scope.param("bias", options.bias_init, Shape{c}), stat_shape);
  return y;
}

Tensor group_norm_fn::operator()(const GroupNormOptions& options, Scope& scope, const Tensor& x) const {
  weft::detail::require_float(x, "core::group_norm");
  if (x.rank() == 0) throw ShapeError("weft::core::group_norm: needs an input with a channel axis, got a scalar");
  const int r = x.rank();
  const std::int64_t c = x.shape()[r - 1];
  const std::int64_t groups = options.num_groups;
  if (groups <= 0 || c % groups != 0)
    throw ValueError(fmt::format("weft::core::group_norm: Number of groups ({}) does not divide the number of channels "
                                 "({}) of the input {} (scope \"{}\"); choose num_groups dividing {}",
                                 groups, c, x.shape().str(), scope.path_str(), c));
  // x as (batch, spatial..., groups, group size): statistics over spatial... and group size.
  std::vector<std::int64_t> grouped(x.shape().begin(), x.shape().end() - 1);
  grouped.push_back(groups);
  grouped.push_back(c / groups);
  if (grouped.size() > static_cast<std::size_t>(Shape::kMaxRank))
    throw ShapeError(fmt::format("weft::core::group_norm: the input {} has too many axes (at most {})", x.shape().str(),
                                 Shape::kMaxRank - 1));
  std::vector<int> reduce;
  for (int i = 1; i < r - 1; ++i) reduce.push_back(i);
  reduce.push_back(r);  // the group size axis
  const Axes ax(reduce);
  const Tensor xg = reshape(x, grouped);
  const Tensor centered = xg - mean(xg, ax, true);
  Tensor y = reshape(centered * rsqrt(mean(square(centered), ax, true) + options.epsilon), x.shape());
  if (options.use_scale) y = y * scope.param("scale", options.scale_init, Shape{c});
  if (options.use_bias) y = y + scope.param("bias", options.bias_init, Shape{c});
  return y;
}

Tensor rms_norm_fn::operator()(const RMSNormOptions& options, Scope& scope, const Tensor& x) const {
  weft::detail::require_float(x, "core::rms_norm");
  if (x.rank() == 0) throw ShapeError("weft::core::rms_norm: needs an input with at least one axis, got a scalar");
  if (options.reduction_axes.empty() || options.feature_axes.empty())
    throw ValueError(fmt::format("weft::core::rms_norm: reduction_axes and feature_axes must each name at least one "
                                 "axis, got {} and {} axes for the input {} (scope \"{}\"); the defaults are {{-1}}",
                                 options.reduction_axes.size(), options.feature_axes.size(), x.shape().str(),
                                 scope.path_str()));
  if (!(options.epsilon >= 0.0f))
    throw ValueError(fmt::format("weft::core::rms_norm: epsilon must be >= 0 (it is added to a mean of squares "
                                 "under rsqrt), got {} (scope \"{}\"); the default is 1e-6",
                                 options.epsilon, scope.path_str()));
  const auto reduce = weft::detail::normalize_axes(Axes(options.reduction_axes), x.rank(), "core::rms_norm");
  const auto features = weft::detail::normalize_axes(Axes(options.feature_axes), x.rank(), "core::rms_norm");
  // As Flax's _normalize: mul = rsqrt(mean(x^2) + epsilon) * scale, then x * mul.
  Tensor mul = rsqrt(mean(square(x), Axes(std::vector<int>(reduce.begin(), reduce.end())), true) + options.epsilon);
  if (options.use_scale) {
    std::vector<std::int64_t> reduced_feature_shape, feature_shape(static_cast<std::size_t>(x.rank()), 1);
    for (const int a : features) {
      reduced_feature_shape.push_back(x.shape()[a]);
      feature_shape[static_cast<std::size_t>(a)] = x.shape()[a];
    }
    const Tensor scale = scope.param("scale", options.scale_init, Shape(reduced_feature_shape));
    mul = mul * reshape(scale, feature_shape);
  }
  return x * mul;
}

}  // namespace weft::core
