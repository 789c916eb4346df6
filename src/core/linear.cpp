#include "weft/core/linear.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include <fmt/format.h>

#include "../format.hpp"
#include "messages.hpp"
#include "../tensor_impl.hpp"
#include "weft/ops.hpp"

namespace weft::core {

namespace {

using detail::in_scope;

using weft::detail::extents_str;

std::int64_t product(const std::vector<std::int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::int64_t{1}, std::multiplies<>());
}

/// An initializer that draws `flat` with `init` and reshapes the result to the requested shape:
/// DenseGeneral's kernel and bias initializers see the flattened shape, as in Flax.
Initializer flattened(Initializer init, Shape flat) {
  return [init = std::move(init), flat](Key key, const Shape& shape) { return reshape(init(key, flat), shape); };
}

}  // namespace

Tensor dense_fn::operator()(const DenseOptions& options, Scope& scope, const Tensor& x) const {
  const std::int64_t features = options.features;
  if (features <= 0)
    throw ValueError(fmt::format("weft::core::dense: features must be positive, got {}{}", features, in_scope(scope)));
  weft::detail::require_defined(x, "core::dense");
  if (x.rank() == 0)
    throw ShapeError(fmt::format("weft::core::dense: the input is a scalar (shape ()); dense contracts "
                                 "the last axis, so give it at least one axis{}", in_scope(scope)));
  const Tensor kernel = scope.param("kernel", options.kernel_init, Shape{x.shape()[x.rank() - 1], features});
  Tensor y = matmul(x, kernel);
  if (options.use_bias) y = y + scope.param("bias", options.bias_init, Shape{features});
  return y;
}

Tensor dense_general_fn::operator()(const DenseGeneralOptions& options, Scope& scope, const Tensor& x) const {
  const std::vector<std::int64_t>& features = options.features;
  if (features.empty() || std::ranges::any_of(features, [](std::int64_t f) { return f <= 0; }))
    throw ValueError(fmt::format("weft::core::dense_general: features must be one or more positive extents, got {}{}",
                                 extents_str(features), in_scope(scope)));
  weft::detail::require_defined(x, "core::dense_general");
  if (options.axis.empty())
    throw ValueError(fmt::format("weft::core::dense_general: axis is empty; name at least one input axis to contract{}",
                                 in_scope(scope)));
  const int rank = x.rank();
  std::vector<int> axes;  // normalised, in the given (kernel) order
  for (int a : options.axis) {
    const int n = normalize_axis(a, rank, "core::dense_general");
    if (std::ranges::find(axes, n) != axes.end())
      throw ValueError(fmt::format("weft::core::dense_general: axis {} is contracted twice (axes of input {}){}", a,
                                   x.shape().str(), in_scope(scope)));
    axes.push_back(n);
  }
  std::vector<int> perm;  // the free axes in order, then the contracted ones in kernel order
  std::vector<std::int64_t> free_dims, in_dims;
  for (int i = 0; i < rank; ++i)
    if (std::ranges::find(axes, i) == axes.end()) {
      perm.push_back(i);
      free_dims.push_back(x.shape()[i]);
    }
  for (int a : axes) {
    perm.push_back(a);
    in_dims.push_back(x.shape()[a]);
  }
  const std::int64_t in = product(in_dims), out = product(features);
  std::vector<std::int64_t> kernel_dims = in_dims;
  kernel_dims.insert(kernel_dims.end(), features.begin(), features.end());
  if (kernel_dims.size() > static_cast<std::size_t>(Shape::kMaxRank))
    throw ShapeError(fmt::format("weft::core::dense_general: the kernel would have rank {} (contracted extents {} + "
                                 "features {}), above weft's maximum rank {}{}",
                                 kernel_dims.size(), extents_str(in_dims), extents_str(features), Shape::kMaxRank,
                                 in_scope(scope)));
  const Tensor kernel = scope.param("kernel", flattened(options.kernel_init, Shape{in, out}), Shape(kernel_dims));

  // (free..., in) @ (in, out): one GEMM; the transpose copies only when the contracted axes are
  // not already last and in kernel order.
  const Tensor xt = std::ranges::is_sorted(perm) ? x : transpose(x, perm);  // perm is a permutation
  std::vector<std::int64_t> lhs_dims = free_dims;
  lhs_dims.push_back(in);
  Tensor y = matmul(reshape(xt, lhs_dims), reshape(kernel, {in, out}));
  std::vector<std::int64_t> out_dims = free_dims;
  out_dims.insert(out_dims.end(), features.begin(), features.end());
  y = reshape(y, out_dims);
  if (options.use_bias)
    y = y + scope.param("bias", flattened(options.bias_init, Shape{out}), Shape(features));
  return y;
}

namespace {

void check_embed_options(const EmbedOptions& options, const Scope& scope, const char* op) {
  const std::int64_t n = options.num_embeddings, f = options.features;
  if (n <= 0 || f <= 0)
    throw ValueError(fmt::format("weft::core::{}: num_embeddings and features must be positive, got {} and {}{}", op, n,
                                 f, in_scope(scope)));
}

Tensor embedding_table(const EmbedOptions& options, Scope& scope) {
  const std::int64_t n = options.num_embeddings, f = options.features;
  return scope.param("embedding", options.embedding_init, Shape{n, f});
}

}  // namespace

Tensor embed_fn::operator()(const EmbedOptions& options, Scope& scope, const Tensor& indices) const {
  check_embed_options(options, scope, "embed");
  weft::detail::require_defined(indices, "core::embed");
  if (indices.dtype() != DType::int32)
    throw DTypeError(fmt::format("weft::core::embed: the indices {} are {}; embed looks rows up by integer index, so "
                                 "give int32 indices (astype(x, DType::int32)){}",
                                 indices.shape().str(), name(indices.dtype()), in_scope(scope)));
  const Tensor table = embedding_table(options, scope);
  try {
    return take(table, indices);
  } catch (const ValueError& e) {
    throw ValueError(fmt::format("weft::core::embed: an index is outside [0, num_embeddings = {}){}: {}",
                                 static_cast<std::int64_t>(options.num_embeddings), in_scope(scope), e.what()));
  }
}

Tensor embed_attend_fn::operator()(const EmbedOptions& options, Scope& scope, const Tensor& query) const {
  check_embed_options(options, scope, "embed_attend");
  weft::detail::require_float(query, "core::embed_attend");
  const std::int64_t f = options.features;
  if (query.rank() == 0 || query.shape()[query.rank() - 1] != f)
    throw ShapeError(fmt::format("weft::core::embed_attend: the query {} must end in features = {} (it is compared "
                                 "with every embedding row){}",
                                 query.shape().str(), f, in_scope(scope)));
  return matmul(query, embedding_table(options, scope), MatmulOptions{.transpose_b = true});
}

}  // namespace weft::core
