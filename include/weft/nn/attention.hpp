#pragma once
// Attention modules: nn::MultiHeadDotProductAttention and nn::SelfAttention (math in
// core::multi_head_dot_product_attention). `deterministic` may be an attribute or a call argument,
// exactly once, and is merged only when dropout_rate > 0, as Linen does.
#include <optional>

#include "weft/core/attention.hpp"
#include "weft/nn/core_options.hpp"
#include "weft/nn/module.hpp"

namespace weft::nn {

struct MultiHeadDotProductAttention {
  required<std::int64_t, "num_heads"> num_heads;
  std::int64_t qkv_features = 0;  ///< 0: inputs_q's last extent
  std::int64_t out_features = 0;  ///< 0: inputs_q's last extent
  float dropout_rate = 0.0f;
  bool broadcast_dropout = true;
  std::optional<bool> deterministic{};
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer out_kernel_init{};  ///< empty: kernel_init
  Initializer bias_init = core::initializers::zeros();

  /// inputs_kv empty: self-attention. `dropout_rng` overrides the "dropout" stream.
  Tensor operator()(Scope& s, const Tensor& inputs_q, const Tensor& inputs_kv = {}, const Tensor& mask = {},
                    std::optional<bool> deterministic = std::nullopt,
                    std::optional<Key> dropout_rng = std::nullopt) const;

  /// Linen's keyword-only call arguments: s(attention, q, "inputs_kv"_kw = kv, "mask"_kw = m,
  /// "deterministic"_kw = !train, "dropout_rng"_kw = key), any of them left out.
  struct CallKeywords {
    Tensor inputs_kv{};
    Tensor mask{};
    std::optional<bool> deterministic{};
    std::optional<Key> dropout_rng{};
  };
  using call_keywords = CallKeywords;
  Tensor operator()(Scope& s, const Tensor& inputs_q, const CallKeywords& kw) const {
    return (*this)(s, inputs_q, kw.inputs_kv, kw.mask, kw.deterministic, kw.dropout_rng);
  }
};

/// Multi-head attention of a sequence with itself (Linen's SelfAttention).
struct SelfAttention {
  required<std::int64_t, "num_heads"> num_heads;
  std::int64_t qkv_features = 0;
  std::int64_t out_features = 0;
  float dropout_rate = 0.0f;
  bool broadcast_dropout = true;
  std::optional<bool> deterministic{};
  bool use_bias = true;
  Initializer kernel_init = core::initializers::lecun_normal();
  Initializer out_kernel_init{};
  Initializer bias_init = core::initializers::zeros();

  Tensor operator()(Scope& s, const Tensor& x, const Tensor& mask = {},
                    std::optional<bool> deterministic = std::nullopt,
                    std::optional<Key> dropout_rng = std::nullopt) const;

  /// s(attention, x, "mask"_kw = m, "deterministic"_kw = !train, "dropout_rng"_kw = key).
  struct CallKeywords {
    Tensor mask{};
    std::optional<bool> deterministic{};
    std::optional<Key> dropout_rng{};
  };
  using call_keywords = CallKeywords;
  Tensor operator()(Scope& s, const Tensor& x, const CallKeywords& kw) const {
    return (*this)(s, x, kw.mask, kw.deterministic, kw.dropout_rng);
  }
};

}  // namespace weft::nn

WEFT_RECORD(weft::nn::MultiHeadDotProductAttention, num_heads, qkv_features, out_features, dropout_rate,
            broadcast_dropout, deterministic, use_bias, kernel_init, out_kernel_init, bias_init);
WEFT_RECORD(weft::nn::MultiHeadDotProductAttention::CallKeywords, inputs_kv, mask, deterministic, dropout_rng);
WEFT_RECORD(weft::nn::SelfAttention::CallKeywords, mask, deterministic, dropout_rng);
WEFT_RECORD(weft::nn::SelfAttention, num_heads, qkv_features, out_features, dropout_rate, broadcast_dropout,
            deterministic, use_bias, kernel_init, out_kernel_init, bias_init);

// Defined after the records: nn::core_options reads both the module's and the options' fields.
namespace weft::nn {

namespace detail {
template <class M>
core::MultiHeadDotProductAttentionOptions attention_options(const M& m, std::optional<bool> deterministic) {
  // Linen merges the flag only when there is dropout; without it the layer is deterministic.
  const bool det = m.dropout_rate > 0.0f ? merge_param("deterministic", m.deterministic, deterministic) : true;
  return core_options<core::MultiHeadDotProductAttentionOptions>(m, "deterministic"_kw = det);
}
}  // namespace detail

inline Tensor MultiHeadDotProductAttention::operator()(Scope& s, const Tensor& inputs_q, const Tensor& inputs_kv,
                                                      const Tensor& mask, std::optional<bool> deterministic,
                                                      std::optional<Key> dropout_rng) const {
  return core::multi_head_dot_product_attention(detail::attention_options(*this, deterministic), s, inputs_q,
                                                inputs_kv, mask, dropout_rng);
}

inline Tensor SelfAttention::operator()(Scope& s, const Tensor& x, const Tensor& mask,
                                       std::optional<bool> deterministic, std::optional<Key> dropout_rng) const {
  return core::multi_head_dot_product_attention(detail::attention_options(*this, deterministic), s, x, Tensor{}, mask,
                                                dropout_rng);
}

}  // namespace weft::nn
