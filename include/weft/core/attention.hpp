#pragma once
// Attention of the functional core (Flax's attention.py): dot_product_attention(_weights), the
// multi_head_dot_product_attention layer, and the mask helpers make_attention_mask and
// make_causal_mask.
//
// Shapes follow Flax: query (batch..., q_len, heads, depth), key (batch..., kv_len, heads, depth),
// value (batch..., kv_len, heads, v_depth); weights (batch..., heads, q_len, kv_len); output
// (batch..., q_len, heads, v_depth). A mask is int32 (nonzero = attend), broadcastable to the
// weights' shape.
#include <cstdint>
#include <optional>

#include "weft/core/initializers.hpp"
#include "weft/core/scope.hpp"
#include "weft/random.hpp"
#include "weft/record.hpp"

namespace weft::core {

struct DotProductAttentionOptions {
  Tensor mask{};                  ///< int32, broadcastable to (batch..., heads, q_len, kv_len); 0 masks a score out
  Tensor bias{};                  ///< float32 added to the scores before masking (e.g. a relative-position bias)
  float dropout_rate = 0.0f;      ///< dropout on the attention weights
  bool broadcast_dropout = true;  ///< one dropout mask (q_len, kv_len) shared over batch and heads
  std::optional<Key> dropout_rng{};
  /// Required when dropout_rate > 0 (true: no dropout, eval); a default would break train or eval.
  std::optional<bool> deterministic{};
};

/// softmax(query / sqrt(depth) . key over depth, masked) over kv_len, then dropout: the attention
/// weights (batch..., heads, q_len, kv_len). Masked scores are set to the lowest float before the
/// softmax (a fully masked row is uniform, as Flax). Dropout keeps each weight with probability
/// 1 - rate, the mask being jax.random.bernoulli(dropout_rng, 1 - rate, shape) with shape
/// (1, ..., 1, q_len, kv_len) when broadcast_dropout, and scales kept weights by 1 / (1 - rate).
[[nodiscard]] Tensor dot_product_attention_weights(const Tensor& query, const Tensor& key,
                                                   const DotProductAttentionOptions& options = {});

/// The weights above applied to value: (batch..., q_len, heads, v_depth). Computed with batched
/// matrix products over (batch * heads, len, depth) views, so gradients come from the recorded ops.
[[nodiscard]] Tensor dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                           const DotProductAttentionOptions& options = {});

struct MultiHeadDotProductAttentionOptions {
  required<std::int64_t, "num_heads"> num_heads;
  std::int64_t qkv_features = 0;  ///< 0: inputs_q's last extent; must be a multiple of num_heads
  std::int64_t out_features = 0;  ///< 0: inputs_q's last extent
  float dropout_rate = 0.0f;
  bool broadcast_dropout = true;
  /// Required only when dropout_rate > 0 (Flax's rule); without dropout the layer is deterministic.
  std::optional<bool> deterministic{};
  bool use_bias = true;
  Initializer kernel_init = initializers::lecun_normal();
  Initializer out_kernel_init{};  ///< the `out` projection's kernel initializer; empty: kernel_init
  Initializer bias_init = initializers::zeros();
};

struct multi_head_dot_product_attention_fn {
  using options_type = MultiHeadDotProductAttentionOptions;
  /// Flax's MultiHeadDotProductAttention: child scopes `query`, `key`, `value` project to
  /// (..., len, num_heads, head_dim) with dense_general, head_dim = qkv_features / num_heads;
  /// dot_product_attention; then `out` (dense_general over the last two axes) to out_features.
  /// inputs_q (batch..., q_len, features); inputs_kv (batch..., kv_len, features), or an empty
  /// Tensor for self-attention. The dropout key is `dropout_rng`, else scope.make_rng("dropout").
  Tensor operator()(const MultiHeadDotProductAttentionOptions& options, Scope& scope, const Tensor& inputs_q,
                    const Tensor& inputs_kv = {}, const Tensor& mask = {},
                    std::optional<Key> dropout_rng = std::nullopt) const;
  /// The same with only num_heads given: `partial(core::multi_head_dot_product_attention, 8)`.
  Tensor operator()(std::int64_t num_heads, Scope& scope, const Tensor& inputs_q, const Tensor& inputs_kv = {},
                    const Tensor& mask = {}) const {
    return (*this)(MultiHeadDotProductAttentionOptions{.num_heads = num_heads}, scope, inputs_q, inputs_kv, mask);
  }
};
inline constexpr multi_head_dot_product_attention_fn multi_head_dot_product_attention{};

/// The int32 mask (..., 1, q_len, kv_len) of query_mask[..., q] * key_mask[..., k]: padding masks
/// (batch..., q_len) and (batch..., kv_len), nonzero = a real token; batch axes broadcast.
[[nodiscard]] Tensor make_attention_mask(const Tensor& query_mask, const Tensor& key_mask);

/// The int32 lower-triangular mask (1, length, length), 1 where the key position is at or before
/// the query position; it broadcasts over batch and heads.
[[nodiscard]] Tensor make_causal_mask(std::int64_t length);

}  // namespace weft::core

WEFT_RECORD(weft::core::DotProductAttentionOptions, mask, bias, dropout_rate, broadcast_dropout, dropout_rng,
            deterministic);
WEFT_RECORD(weft::core::MultiHeadDotProductAttentionOptions, num_heads, qkv_features, out_features, dropout_rate,
            broadcast_dropout, deterministic, use_bias, kernel_init, out_kernel_init, bias_init);
