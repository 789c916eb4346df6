#include "weft/core/attention.hpp"

#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "../tensor_impl.hpp"
#include "messages.hpp"
#include "weft/core/linear.hpp"
#include "weft/ops.hpp"
#include "weft/partial.hpp"

namespace weft::core {

namespace {

/// The attention shapes, checked: batch axes, heads, lengths and depths.
struct AttentionDims {
  std::vector<std::int64_t> batch;  // query.shape[:-3]
  std::int64_t batch_size = 1;      // their product
  std::int64_t heads = 0, q_len = 0, kv_len = 0, depth = 0;

  [[nodiscard]] std::vector<std::int64_t> weights_dims() const {
    std::vector<std::int64_t> d = batch;
    d.insert(d.end(), {heads, q_len, kv_len});
    return d;
  }
};

std::string qkv_str(const Tensor& query, const Tensor& key, const Tensor* value) {
  return fmt::format("query {}, key {}{}", query.shape().str(), key.shape().str(),
                     value ? fmt::format(", value {}", value->shape().str()) : std::string());
}

AttentionDims check_attention(const Tensor& query, const Tensor& key, const Tensor* value, const char* op) {
  const std::string where = fmt::format("weft::{}: ", op);
  weft::detail::require_float(query, op);
  weft::detail::require_float(key, op);
  if (value) weft::detail::require_float(*value, op);
  const int r = query.rank();
  if (r < 3 || key.rank() != r || (value && value->rank() != r))
    throw ShapeError(fmt::format("{}query, key and value must have the same rank, at least 3 "
                                 "((batch..., length, heads, depth)), got {}", where, qkv_str(query, key, value)));
  const Shape &qs = query.shape(), &ks = key.shape();
  for (int i = 0; i < r - 3; ++i)
    if (ks[i] != qs[i] || (value && value->shape()[i] != qs[i]))
      throw ShapeError(fmt::format("{}the batch axes (all but the last three) of query, "
                                   "key and value must match, got {}", where, qkv_str(query, key, value)));
  if (ks[r - 2] != qs[r - 2] || (value && value->shape()[r - 2] != qs[r - 2]))
    throw ShapeError(fmt::format("{}query, key and value must have the same number of heads (axis -2), got {}",
                                 where, qkv_str(query, key, value)));
  if (ks[r - 1] != qs[r - 1])
    throw ShapeError(fmt::format("{}query and key must have the same depth (axis -1), got {}",
                                 where, qkv_str(query, key, value)));
  if (value && value->shape()[r - 3] != ks[r - 3])
    throw ShapeError(fmt::format("{}key and value must have the same length (axis -3), got {}",
                                 where, qkv_str(query, key, value)));
  AttentionDims d;
  d.batch.assign(qs.begin(), qs.begin() + (r - 3));
  d.batch_size = std::accumulate(d.batch.begin(), d.batch.end(), std::int64_t{1}, std::multiplies<>());
  d.heads = qs[r - 2];
  d.q_len = qs[r - 3];
  d.kv_len = ks[r - 3];
  d.depth = qs[r - 1];
  return d;
}

void check_options(const DotProductAttentionOptions& o, const AttentionDims& d, const char* op) {
  const std::string where = fmt::format("weft::{}: ", op);
  const Shape weights(d.weights_dims());
  auto check_broadcast = [&](const Tensor& t, const char* what) {
    bool fits = t.rank() <= weights.rank();
    for (int i = 1; fits && i <= t.rank(); ++i) {
      const std::int64_t e = t.shape()[t.rank() - i];
      fits = e == 1 || e == weights[weights.rank() - i];
    }
    if (!fits)
      throw ShapeError(fmt::format("{}the {} {} does not broadcast to the attention weights' "
                                   "shape (batch..., heads, q_len, kv_len) = {}",
                                   where, what, t.shape().str(), weights.str()));
  };
  if (o.mask.defined()) {
    if (o.mask.dtype() != DType::int32)
      throw DTypeError(fmt::format("{}the mask must be int32 (nonzero = attend), got float32 {}; make it with "
                                   "make_attention_mask / make_causal_mask or a comparison",
                                   where, o.mask.shape().str()));
    check_broadcast(o.mask, "mask");
  }
  if (o.bias.defined()) {
    weft::detail::require_float(o.bias, op);
    check_broadcast(o.bias, "bias");
  }
  const float rate = o.dropout_rate;
  if (!(rate >= 0.0f && rate <= 1.0f))
    throw ValueError(fmt::format("{}dropout_rate {:.6f} is not a probability; use a rate in [0, 1]", where, rate));
  if (rate > 0.0f) {
    if (!o.deterministic)
      throw ValueError(fmt::format("{}dropout_rate is {:.6f}, so `deterministic` must be given: false applies dropout "
                                   "(training), true does not (eval)",
                                   where, rate));
    if (!*o.deterministic && !o.dropout_rng)
      throw ValueError(fmt::format("{}dropout is active (dropout_rate {:.6f}, deterministic false) but no dropout_rng "
                                   "was given; pass a Key as dropout_rng",
                                   where, rate));
  }
}

/// (batch..., len, heads, depth) -> (batch * heads, len, depth); a copy only when both len and
/// heads exceed 1 (otherwise the layouts coincide).
Tensor heads_first(const Tensor& t, std::int64_t rows) {
  const int r = t.rank();
  const std::int64_t len = t.shape()[r - 3], heads = t.shape()[r - 2], depth = t.shape()[r - 1];
  if (heads == 1 || len == 1) return reshape(t, {rows, len, depth});
  std::vector<int> perm(static_cast<std::size_t>(r));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[static_cast<std::size_t>(r - 3)], perm[static_cast<std::size_t>(r - 2)]);
  return reshape(transpose(t, perm), {rows, len, depth});
}

/// The weights (batch..., heads, q_len, kv_len), inputs already checked.
Tensor weights_of(const Tensor& query, const Tensor& key, const DotProductAttentionOptions& o, const AttentionDims& d) {
  const std::int64_t rows = d.batch_size * d.heads;
  // As Flax: the query is divided by sqrt(depth) (fewer elements than the scores).
  const Tensor q = heads_first(query / std::sqrt(static_cast<float>(d.depth)), rows);
  const Tensor k = heads_first(key, rows);
  Tensor w = reshape(matmul(q, k, MatmulOptions{.transpose_b = true}), d.weights_dims());
  if (o.bias.defined()) w = w + o.bias;
  if (o.mask.defined()) w = where(o.mask, w, Tensor(std::numeric_limits<float>::lowest()));
  w = softmax(w, -1);
  if (o.dropout_rate > 0.0f && !*o.deterministic) {
    const float keep = 1.0f - o.dropout_rate;
    std::vector<std::int64_t> mask_dims = d.weights_dims();
    if (o.broadcast_dropout)
      for (std::size_t i = 0; i + 2 < mask_dims.size(); ++i) mask_dims[i] = 1;
    const Shape mask_shape(mask_dims);
    // Flax's multiplier keep / keep_prob; at rate 1 every weight is dropped (not 0 / 0).
    const Tensor multiplier =
        keep == 0.0f ? zeros(mask_shape) : astype(bernoulli(*o.dropout_rng, keep, mask_shape), DType::float32) / keep;
    w = w * multiplier;
  }
  return w;
}

}  // namespace

Tensor dot_product_attention_weights(const Tensor& query, const Tensor& key,
                                     const DotProductAttentionOptions& options) {
  const AttentionDims d = check_attention(query, key, nullptr, "core::dot_product_attention_weights");
  check_options(options, d, "core::dot_product_attention_weights");
  return weights_of(query, key, options, d);
}

Tensor dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                             const DotProductAttentionOptions& options) {
  const AttentionDims d = check_attention(query, key, &value, "core::dot_product_attention");
  check_options(options, d, "core::dot_product_attention");
  const std::int64_t rows = d.batch_size * d.heads;
  const std::int64_t v_depth = value.shape()[value.rank() - 1];
  const Tensor w = reshape(weights_of(query, key, options, d), {rows, d.q_len, d.kv_len});
  const Tensor out = matmul(w, heads_first(value, rows));  // (batch * heads, q_len, v_depth)
  // Back to (batch..., q_len, heads, v_depth).
  std::vector<std::int64_t> dims = d.batch;
  if (d.heads == 1 || d.q_len == 1) {
    dims.insert(dims.end(), {d.q_len, d.heads, v_depth});
    return reshape(out, dims);
  }
  dims.insert(dims.end(), {d.heads, d.q_len, v_depth});
  const int r = static_cast<int>(dims.size());
  std::vector<int> perm(static_cast<std::size_t>(r));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[static_cast<std::size_t>(r - 3)], perm[static_cast<std::size_t>(r - 2)]);
  return transpose(reshape(out, dims), perm);
}

Tensor multi_head_dot_product_attention_fn::operator()(const MultiHeadDotProductAttentionOptions& options, Scope& scope,
                                                       const Tensor& inputs_q, const Tensor& inputs_kv,
                                                       const Tensor& mask, std::optional<Key> dropout_rng) const {
  const std::string where = "weft::core::multi_head_dot_product_attention: ";
  const std::string in_scope = detail::in_scope(scope);
  const std::int64_t heads = options.num_heads;
  if (heads <= 0) throw ValueError(fmt::format("{}num_heads must be positive, got {}{}", where, heads, in_scope));
  weft::detail::require_float(inputs_q, "core::multi_head_dot_product_attention");
  const Tensor& inputs_k = inputs_kv.defined() ? inputs_kv : inputs_q;
  weft::detail::require_float(inputs_k, "core::multi_head_dot_product_attention");
  const int r = inputs_q.rank();
  if (r < 2 || inputs_k.rank() != r ||
      !std::equal(inputs_q.shape().begin(), inputs_q.shape().end() - 2, inputs_k.shape().begin()))
    throw ShapeError(fmt::format("{}inputs_q {} and inputs_kv {} must both be (batch..., length, features) with the "
                                 "same batch axes{}",
                                 where, inputs_q.shape().str(), inputs_k.shape().str(), in_scope));
  const std::int64_t in_features = inputs_q.shape()[r - 1];
  const std::int64_t qkv_features = options.qkv_features > 0 ? options.qkv_features : in_features;
  const std::int64_t out_features = options.out_features > 0 ? options.out_features : in_features;
  if (qkv_features % heads != 0)
    throw ValueError(fmt::format("{}Memory dimension ({}) must be divisible by number of heads ({}); set qkv_features "
                                 "(now {}, 0 meaning inputs_q's last extent) to a multiple of num_heads{}",
                                 where, qkv_features, heads, options.qkv_features, in_scope));
  const float rate = options.dropout_rate;
  if (!(rate >= 0.0f && rate <= 1.0f))
    throw ValueError(
        fmt::format("{}dropout_rate {:.6f} is not a probability; use a rate in [0, 1]{}", where, rate, in_scope));
  // As Flax: `deterministic` is required only when there is dropout to switch off.
  if (rate > 0.0f && !options.deterministic)
    throw ValueError(fmt::format("{}dropout_rate is {:.6f}, so `deterministic` must be given: false applies dropout "
                                 "(training), true does not (eval){}",
                                 where, rate, in_scope));
  const bool deterministic = rate > 0.0f ? *options.deterministic : true;

  const DenseGeneralOptions projection{.features = {heads, qkv_features / heads},
                                       .axis = {-1},
                                       .use_bias = options.use_bias,
                                       .kernel_init = options.kernel_init,
                                       .bias_init = options.bias_init};
  const Tensor query = scope.child("query", partial(dense_general, projection))(inputs_q);
  const Tensor key = scope.child("key", partial(dense_general, projection))(inputs_k);
  const Tensor value = scope.child("value", partial(dense_general, projection))(inputs_k);
  if (!deterministic && !dropout_rng) dropout_rng = scope.make_rng("dropout");
  const Tensor x = dot_product_attention(query, key, value,
                                         DotProductAttentionOptions{.mask = mask,
                                                                    .dropout_rate = rate,
                                                                    .broadcast_dropout = options.broadcast_dropout,
                                                                    .dropout_rng = dropout_rng,
                                                                    .deterministic = deterministic});
  const DenseGeneralOptions out{.features = {out_features},
                                .axis = {-2, -1},
                                .use_bias = options.use_bias,
                                .kernel_init = options.out_kernel_init ? options.out_kernel_init : options.kernel_init,
                                .bias_init = options.bias_init};
  return scope.child("out", partial(dense_general, out))(x);
}

Tensor make_attention_mask(const Tensor& query_mask, const Tensor& key_mask) {
  for (const Tensor* m : {&query_mask, &key_mask}) {
    weft::detail::require_defined(*m, "core::make_attention_mask");
    const std::string got = fmt::format("{} {} and {} {}", name(query_mask.dtype()), query_mask.shape().str(),
                                        name(key_mask.dtype()), key_mask.shape().str());
    if (m->dtype() != DType::int32)
      throw DTypeError(fmt::format("weft::core::make_attention_mask: the padding masks must "
                                   "be int32 (nonzero = a token), got {}", got));
    if (m->rank() == 0)
      throw ShapeError(fmt::format("weft::core::make_attention_mask: the padding masks must have a "
                                   "length axis ((batch..., length)), got {}", got));
  }
  std::vector<std::int64_t> qd = query_mask.shape().to_vector(), kd = key_mask.shape().to_vector();
  qd.push_back(1);             // (..., q, 1)
  kd.insert(kd.end() - 1, 1);  // (..., 1, k)
  const Tensor zero = full(Shape{}, std::int32_t{0});
  const Tensor q = reshape(query_mask != zero, qd), k = reshape(key_mask != zero, kd);
  const Shape both = broadcast_shapes(q.shape(), k.shape(), "core::make_attention_mask");
  std::vector<std::int64_t> dims = both.to_vector();
  dims.insert(dims.end() - 2, 1);  // (..., 1, q, k): broadcasts over heads
  return reshape(q * k, dims);
}

Tensor make_causal_mask(std::int64_t length) {
  if (length < 0) throw ValueError(fmt::format("weft::core::make_causal_mask: length must be >= 0, got {}", length));
  const Tensor idx = arange(length, DType::int32);
  return reshape(reshape(idx, {length, 1}) >= reshape(idx, {1, length}), {1, length, length});
}

}  // namespace weft::core
