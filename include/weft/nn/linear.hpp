#pragma once
// Linear modules: nn::Dense, nn::DenseGeneral, nn::Einsum, nn::Embed (math in core::dense,
// dense_general, einsum, embed). Einsum's `einsum_str` may be an attribute or a call argument,
// exactly once (Linen's merge_param).
#include <optional>
#include <string>

#include "weft/core/linear.hpp"
#include "weft/nn/core_options.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

struct Dense {
  required<std::int64_t, "features"> features;
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();

  Tensor operator()(Scope& s, const Tensor& x) const;
};

struct DenseGeneral {
  required<std::vector<std::int64_t>, "features"> features;
  std::vector<int> axis = {-1};
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();

  Tensor operator()(Scope& s, const Tensor& x) const;
};

struct Einsum {
  required<std::vector<std::int64_t>, "shape"> shape;
  std::optional<std::string> einsum_str{};
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer bias_init = core::initializers::zeros();

  /// einsum(einsum_str, x, kernel) + bias; einsum_str from the attribute or this argument.
  Tensor operator()(Scope& s, const Tensor& x, std::optional<std::string> einsum_str = std::nullopt) const;

  /// s(einsum, x, "einsum_str"_kw = "ab,bc->ac").
  struct CallKeywords {
    std::optional<std::string> einsum_str{};
  };
  using call_keywords = CallKeywords;
  Tensor operator()(Scope& s, const Tensor& x, const CallKeywords& kw) const { return (*this)(s, x, kw.einsum_str); }
};

struct Embed {
  required<std::int64_t, "num_embeddings"> num_embeddings;
  required<std::int64_t, "features"> features;
  Initializer embedding_init = core::default_embed_init();

  /// The rows of the `embedding` table for int32 indices (an index out of range is an error).
  Tensor operator()(Scope& s, const Tensor& indices) const;
  /// query @ embedding.T with the same table (Linen's Embed.attend). From a parent, run it in the
  /// Embed's scope with s.method(embed, &nn::Embed::attend, h) (Linen's self.embed.attend(h)).
  Tensor attend(core::Scope& s, const Tensor& query) const;
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::Dense, features, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::nn::DenseGeneral, features, axis, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::nn::Einsum, shape, einsum_str, use_bias, kernel_init, bias_init);
WEFT_RECORD(weft::nn::Einsum::CallKeywords, einsum_str);
WEFT_RECORD(weft::nn::Embed, num_embeddings, features, embedding_init);

// Defined after the records: nn::core_options reads both the module's and the options' fields.
namespace weft::nn {

inline Tensor Dense::operator()(Scope& s, const Tensor& x) const {
  return core::dense(core_options<core::DenseOptions>(*this), s, x);
}

inline Tensor DenseGeneral::operator()(Scope& s, const Tensor& x) const {
  return core::dense_general(core_options<core::DenseGeneralOptions>(*this), s, x);
}

inline Tensor Einsum::operator()(Scope& s, const Tensor& x, std::optional<std::string> einsum_str) const {
  const std::string equation = merge_param("einsum_str", this->einsum_str, einsum_str);
  return core::einsum(core_options<core::EinsumOptions>(*this, "einsum_str"_kw = equation), s, x);
}

inline Tensor Embed::operator()(Scope& s, const Tensor& indices) const {
  return core::embed(core_options<core::EmbedOptions>(*this), s, indices);
}

inline Tensor Embed::attend(core::Scope& s, const Tensor& query) const {
  return core::embed_attend(core_options<core::EmbedOptions>(*this), s, query);
}

}  // namespace weft::nn
