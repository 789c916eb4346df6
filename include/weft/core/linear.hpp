#pragma once
// Linear layers of the functional core: dense (Flax's Dense), dense_general, einsum (Flax's
// Einsum), embed and embed_attend (Flax's Embed and Embed.attend).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"
#include "weft/record.hpp"

namespace weft::core {

struct DenseOptions {
  required<std::int64_t, "features"> features;
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

struct DenseGeneralOptions {
  required<std::vector<std::int64_t>, "features"> features;  ///< output extents, appended to the axes not contracted
  std::vector<int> axis = {-1};                   ///< input axes contracted, in the kernel's order
  bool use_bias = true;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer bias_init = initializers::zeros();
};

struct dense_general_fn {
  using options_type = DenseGeneralOptions;
  /// Contracts the input `axis` with the kernel (extents of those axes, then features); the output
  /// is the other input axes, in order, followed by `features`; bias has shape `features`. As
  /// Flax's DenseGeneral, the initializers see the flattened shapes (prod(in), prod(features)) and
  /// (prod(features),), whose fans they use, and the result is reshaped.
  Tensor operator()(const DenseGeneralOptions& options, Scope& scope, const Tensor& x) const;
  /// The same with only `features` given: `partial(core::dense_general, std::vector<std::int64_t>{4, 16})`.
  Tensor operator()(std::vector<std::int64_t> features, Scope& scope, const Tensor& x) const {
    return (*this)(DenseGeneralOptions{.features = std::move(features)}, scope, x);
  }
};
inline constexpr dense_general_fn dense_general{};

struct EinsumOptions {
  required<std::vector<std::int64_t>, "shape"> shape;  ///< the kernel's shape
  required<std::string, "einsum_str"> einsum_str;      ///< "inputs,kernel->output", e.g. "abc,cde->abde"
  bool use_bias = true;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer bias_init = initializers::zeros();
};

struct einsum_fn {
  using options_type = EinsumOptions;
  /// Flax's Einsum: y = einsum(einsum_str, x, kernel) + bias, kernel of `shape`. The bias has the
  /// kernel's extents of the output letters that the kernel has, in the output's order (Flax's
  /// _get_bias_shape), and broadcasts over the others. The equation needs "->" and exactly one
  /// comma; spaces are ignored. Letters are a-z and A-Z; "..." may stand for the leading axes of
  /// the input (and the output), not of the kernel. A letter repeated within one operand (a
  /// diagonal) is a ValueError in weft. Computed as one batched matrix product.
  Tensor operator()(const EinsumOptions& options, Scope& scope, const Tensor& x) const;
};
inline constexpr einsum_fn einsum{};

/// Flax's default embedding initializer: variance 1 / features (fan_in of (num_embeddings, features)
/// with out_axis 0), normal.
[[nodiscard]] inline Initializer default_embed_init() {
  static const Initializer owner =
      initializers::variance_scaling(1.0f, initializers::FanMode::fan_in, initializers::Distribution::normal, -2, 0);
  static const Initializer init = detail::program_lifetime(owner);
  return init;
}

struct EmbedOptions {
  required<std::int64_t, "num_embeddings"> num_embeddings;
  required<std::int64_t, "features"> features;
  Initializer embedding_init = default_embed_init();
};

struct embed_fn {
  using options_type = EmbedOptions;
  /// Rows of `embedding` (num_embeddings, features) picked by int32 `indices`: shape indices + (features,).
  /// Non-int32 indices are a DTypeError and an index outside [0, num_embeddings) a ValueError (Flax
  /// returns NaN rows there).
  Tensor operator()(const EmbedOptions& options, Scope& scope, const Tensor& indices) const;
  Tensor operator()(std::int64_t num_embeddings, std::int64_t features, Scope& scope, const Tensor& indices) const {
    return (*this)(EmbedOptions{.num_embeddings = num_embeddings, .features = features}, scope, indices);
  }
};
inline constexpr embed_fn embed{};

struct embed_attend_fn {
  using options_type = EmbedOptions;
  /// query @ embedding.T, query (..., features) -> (..., num_embeddings): Flax's Embed.attend, e.g.
  /// output logits tied to the input embedding. To share the table with `embed`, run both in the
  /// same scope: `s.child("embed", partial(core::embed, o))(ids)`, then
  /// `core::Scope e = s.push("embed"); core::embed_attend(o, e, h)`.
  Tensor operator()(const EmbedOptions& options, Scope& scope, const Tensor& query) const;
};
inline constexpr embed_attend_fn embed_attend{};

}  // namespace weft::core

WEFT_RECORD(weft::core::DenseOptions, features, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::core::DenseGeneralOptions, features, axis, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::core::EinsumOptions, shape, einsum_str, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::core::EmbedOptions, num_embeddings, features, embedding_init);
