#include "weft/core/linear.hpp"

#include "weft/ops.hpp"

namespace weft::core {

Tensor dense_fn::operator()(const DenseOptions& options, Scope& scope, const Tensor& x) const {
  const std::int64_t features = options.features;
  if (features <= 0)
    throw ValueError("weft::core::dense: features must be positive, got " + std::to_string(features) + " (scope \"" +
                     scope.path_str() + "\")");
  if (x.rank() == 0)
    throw ShapeError("weft::core::dense: the input is a scalar (shape ()); dense contracts the last axis, so give "
                     "it at least one axis (scope \"" + scope.path_str() + "\")");
  const Tensor kernel = scope.param("kernel", options.kernel_init, Shape{x.shape()[x.rank() - 1], features});
  Tensor y = matmul(x, kernel);
  if (options.use_bias) y = y + scope.param("bias", options.bias_init, Shape{features});
  return y;
}

}  // namespace weft::core
