#include "weft/core/linear.hpp"

#include <algorithm>
#include <cctype>
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

/// One operand's letters, "..." expanded to `ellipsis` (letters for the input's leading axes).
std::string expand_ellipsis(const std::string& term, const std::string& ellipsis, bool allowed,
                            const std::string& equation, const Scope& scope) {
  const std::size_t at = term.find("...");
  if (at == std::string::npos) return term;
  if (!allowed)
    throw ValueError(fmt::format("weft::core::einsum: \"...\" in the kernel's term of \"{}\"; the kernel's shape is "
                                 "fixed, so name each of its axes with a letter{}",
                                 equation, in_scope(scope)));
  std::string out = term;
  out.replace(at, 3, ellipsis);
  return out;
}

}  // namespace

Tensor einsum_fn::operator()(const EinsumOptions& options, Scope& scope, const Tensor& x) const {
  const std::vector<std::int64_t>& shape = options.shape;
  if (std::ranges::any_of(shape, [](std::int64_t e) { return e < 0; }))
    throw ValueError(fmt::format("weft::core::einsum: the kernel shape {} has a negative extent{}", extents_str(shape),
                                 in_scope(scope)));
  weft::detail::require_float(x, "core::einsum");
  std::string equation;
  for (const char ch : static_cast<const std::string&>(options.einsum_str))
    if (ch != ' ') equation += ch;
  if (equation.find("->") == std::string::npos)
    throw ValueError(fmt::format("weft::core::einsum: `einsum_str` equation must be explicit and include \"->\", got "
                                 "\"{}\"{}",
                                 equation, in_scope(scope)));
  const auto commas = std::ranges::count(equation, ',');
  if (commas != 1)
    throw ValueError(fmt::format("weft::core::einsum: `einsum_str` equation must have exactly two operands and "
                                 "therefore, exactly one comma character, instead of {} (\"{}\"){}",
                                 commas, equation, in_scope(scope)));
  const std::size_t arrow = equation.find("->"), comma = equation.find(',');
  if (comma > arrow)
    throw ValueError(fmt::format("weft::core::einsum: the comma of \"{}\" must separate the two operands before "
                                 "\"->\"{}",
                                 equation, in_scope(scope)));
  const std::string lhs_raw = equation.substr(0, comma), rhs_raw = equation.substr(comma + 1, arrow - comma - 1),
                    out_raw = equation.substr(arrow + 2);
  // "..." stands for the input axes its letters leave: named with letters the equation does not use.
  std::string ellipsis;
  const std::size_t named = lhs_raw.size() - (lhs_raw.find("...") == std::string::npos ? 0 : 3);
  if (lhs_raw.find("...") != std::string::npos && static_cast<std::size_t>(x.rank()) >= named) {
    for (char c = 'A'; ellipsis.size() < static_cast<std::size_t>(x.rank()) - named && c <= 'z'; ++c)
      if (std::isalpha(static_cast<unsigned char>(c)) && equation.find(c) == std::string::npos) ellipsis += c;
  }
  const std::string lhs = expand_ellipsis(lhs_raw, ellipsis, true, equation, scope);
  const std::string rhs = expand_ellipsis(rhs_raw, ellipsis, false, equation, scope);
  const std::string out = expand_ellipsis(out_raw, ellipsis, true, equation, scope);
  auto check_term = [&](const std::string& term, std::size_t rank, const char* what, const std::string& shape_str) {
    for (std::size_t i = 0; i < term.size(); ++i) {
      if (!std::isalpha(static_cast<unsigned char>(term[i])))
        throw ValueError(fmt::format("weft::core::einsum: '{}' in the {} term of \"{}\" is not a letter; name axes "
                                     "with a-z or A-Z{}",
                                     term[i], what, equation, in_scope(scope)));
      if (term.find(term[i], i + 1) != std::string::npos)
        throw ValueError(fmt::format("weft::core::einsum: the letter '{}' appears twice in the {} term of \"{}\"; "
                                     "weft's einsum takes no diagonals, give each axis of an operand its own letter{}",
                                     term[i], what, equation, in_scope(scope)));
    }
    if (rank != static_cast<std::size_t>(-1) && term.size() != rank)
      throw ShapeError(fmt::format("weft::core::einsum: the {} term \"{}\" of \"{}\" names {} axes, but the {} has "
                                   "{} ({}){}",
                                   what, term, equation, term.size(), what, rank, shape_str, in_scope(scope)));
  };
  check_term(lhs, static_cast<std::size_t>(x.rank()), "input", x.shape().str());
  check_term(rhs, shape.size(), "kernel", extents_str(shape));
  check_term(out, static_cast<std::size_t>(-1), "output", "");
  auto extent = [&](char c) -> std::int64_t {
    const std::size_t i = lhs.find(c), k = rhs.find(c);
    if (i != std::string::npos && k != std::string::npos && x.shape()[static_cast<int>(i)] != shape[k])
      throw ShapeError(fmt::format("weft::core::einsum: the letter '{}' of \"{}\" is {} in the input {} but {} in the "
                                   "kernel {}{}",
                                   c, equation, x.shape()[static_cast<int>(i)], x.shape().str(), shape[k],
                                   extents_str(shape), in_scope(scope)));
    return i != std::string::npos ? x.shape()[static_cast<int>(i)] : shape[k];
  };
  for (const char c : out)
    if (lhs.find(c) == std::string::npos && rhs.find(c) == std::string::npos)
      throw ValueError(fmt::format("weft::core::einsum: the output letter '{}' of \"{}\" is in neither operand{}", c,
                                   equation, in_scope(scope)));
  for (const char c : lhs) (void)extent(c);

  const Tensor kernel = scope.param("kernel", options.kernel_init, Shape(shape));
  // Letters by role: batch (both operands and the output), contracted (both, not the output),
  // free in one operand (it and the output), and summed away in one operand alone.
  std::string batch, contracted, lhs_free, rhs_free;
  for (const char c : out) {
    const bool in_l = lhs.find(c) != std::string::npos, in_r = rhs.find(c) != std::string::npos;
    if (in_l && in_r) batch += c;
    else if (in_l) lhs_free += c;
    else rhs_free += c;
  }
  for (const char c : lhs)
    if (rhs.find(c) != std::string::npos && out.find(c) == std::string::npos) contracted += c;
  // Each operand summed over its own letters that go nowhere, then laid out (batch, free, contracted).
  auto prepare = [&](Tensor t, std::string term, const std::string& free, bool lhs_side) {
    std::vector<int> lone;
    for (std::size_t i = 0; i < term.size(); ++i)
      if (out.find(term[i]) == std::string::npos && contracted.find(term[i]) == std::string::npos)
        lone.push_back(static_cast<int>(i));
    if (!lone.empty()) {
      t = sum(t, Axes(lone));
      std::string kept;
      for (std::size_t i = 0; i < term.size(); ++i)
        if (std::ranges::find(lone, static_cast<int>(i)) == lone.end()) kept += term[i];
      term = kept;
    }
    const std::string order = lhs_side ? batch + free + contracted : batch + contracted + free;
    std::vector<int> perm;
    for (const char c : order) perm.push_back(static_cast<int>(term.find(c)));
    if (!std::ranges::is_sorted(perm)) t = transpose(t, perm);
    auto size_of = [&](const std::string& letters) {
      std::int64_t n = 1;
      for (const char c : letters) n *= extent(c);
      return n;
    };
    return lhs_side ? reshape(t, {size_of(batch), size_of(free), size_of(contracted)})
                    : reshape(t, {size_of(batch), size_of(contracted), size_of(free)});
  };
  const Tensor product = matmul(prepare(x, lhs, lhs_free, true), prepare(kernel, rhs, rhs_free, false));
  // (batch, lhs free, rhs free) back to the output's letters.
  const std::string produced = batch + lhs_free + rhs_free;
  std::vector<std::int64_t> produced_dims;
  for (const char c : produced) produced_dims.push_back(extent(c));
  Tensor y = reshape(product, produced_dims);
  std::vector<int> perm;
  for (const char c : out) perm.push_back(static_cast<int>(produced.find(c)));
  if (!std::ranges::is_sorted(perm)) y = transpose(y, perm);
  if (options.use_bias) {
    // Flax's _get_bias_shape: the kernel's extents of the output letters it has, in output order.
    std::vector<std::int64_t> bias_shape, broadcast(out.size(), 1);
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::size_t k = rhs.find(out[i]);
      if (k == std::string::npos) continue;
      bias_shape.push_back(shape[k]);
      broadcast[i] = shape[k];
    }
    y = y + reshape(scope.param("bias", options.bias_init, Shape(bias_shape)), broadcast);
  }
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
