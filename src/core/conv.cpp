#include "weft/core/conv.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "../format.hpp"
#include "messages.hpp"
#include "../tensor_impl.hpp"

namespace weft::core {

namespace {

using detail::in_scope;

using weft::detail::extents_str;

}  // namespace

Tensor conv_fn::operator()(const ConvOptions& options, Scope& scope, const Tensor& x) const {
  const std::int64_t features = options.features;
  const std::vector<std::int64_t>& kernel_size = options.kernel_size;
  const std::int64_t groups = options.feature_group_count;
  if (features <= 0)
    throw ValueError(fmt::format("weft::core::conv: features must be positive, got {}{}", features, in_scope(scope)));
  if (kernel_size.size() != 2 || std::ranges::any_of(kernel_size, [](std::int64_t k) { return k <= 0; }))
    throw ValueError(fmt::format("weft::core::conv: kernel_size must be two positive extents (height, width), got {}{}",
                                 extents_str(kernel_size), in_scope(scope)));
  if (groups < 1)
    throw ValueError(
        fmt::format("weft::core::conv: feature_group_count must be >= 1, got {}{}", groups, in_scope(scope)));
  weft::detail::require_float(x, "core::conv");
  if (x.rank() < 3)
    throw ShapeError(fmt::format("weft::core::conv: the input must be (batch..., height, width, channels) or (height, "
                                 "width, channels), got shape {}{}",
                                 x.shape().str(), in_scope(scope)));
  const std::int64_t in = x.shape()[x.rank() - 1];
  if (in % groups != 0 || features % groups != 0)
    throw ValueError(fmt::format("weft::core::conv: feature_group_count {} must divide both the input channels ({}) "
                                 "and features ({}){}",
                                 groups, in, features, in_scope(scope)));
  const Tensor kernel =
      scope.param("kernel", options.kernel_init, Shape{kernel_size[0], kernel_size[1], in / groups, features});

  // One batch axis for conv2d: added for a single image, batch axes flattened into one otherwise.
  const int r = x.rank();
  std::int64_t batch = 1;
  for (int i = 0; i < r - 3; ++i) batch *= x.shape()[i];
  const Tensor x4 = r == 4 ? x : reshape(x, {batch, x.shape()[r - 3], x.shape()[r - 2], in});
  Tensor y = conv2d(x4, kernel,
                    Conv2dOptions{.strides = options.strides,
                                  .padding = options.padding,
                                  .dilation = options.kernel_dilation,
                                  .feature_group_count = groups});
  if (r != 4) {
    std::vector<std::int64_t> dims(x.shape().begin(), x.shape().begin() + (r - 3));
    dims.insert(dims.end(), {y.shape()[1], y.shape()[2], features});
    y = reshape(y, dims);
  }
  if (options.use_bias) y = y + scope.param("bias", options.bias_init, Shape{features});
  return y;
}

Tensor max_pool(const Tensor& x, std::vector<std::int64_t> window_shape, std::vector<std::int64_t> strides,
                Padding padding) {
  return weft::max_pool(
      x, PoolOptions{.window = std::move(window_shape), .strides = std::move(strides), .padding = std::move(padding)});
}

Tensor avg_pool(const Tensor& x, std::vector<std::int64_t> window_shape, std::vector<std::int64_t> strides,
                Padding padding, bool count_include_pad) {
  return weft::avg_pool(x, PoolOptions{.window = std::move(window_shape),
                                       .strides = std::move(strides),
                                       .padding = std::move(padding),
                                       .count_include_pad = count_include_pad});
}

}  // namespace weft::core
