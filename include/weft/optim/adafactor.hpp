#pragma once
// Adafactor (optax.adafactor): second moments factored into row and column averages.
#include <cstdint>
#include <optional>

#include "weft/optim/mask.hpp"
#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// The options of adafactor, with Optax's names and defaults.
struct AdafactorOptions {
  /// The learning rate; none (Optax's None) leaves the relative step sizes unscaled.
  std::optional<LearningRate> learning_rate = std::nullopt;
  /// A leaf is factored when its second largest dimension has at least this size (and rank >= 2).
  std::int64_t min_dim_size_to_factor = 128;
  /// The second-moment decay at count c is 1 - (c - decay_offset + 1)^(-decay_rate).
  float decay_rate = 0.8f;
  std::int64_t decay_offset = 0;
  /// Scale each leaf's update by max(rms(param), 1e-3).
  bool multiply_by_parameter_scale = true;
  /// clip_by_block_rms(clipping_threshold) of the scaled gradient; none: no clipping.
  std::optional<float> clipping_threshold = 1.0f;
  /// An ema(momentum, debias = false) of the updates; none: no momentum.
  std::optional<float> momentum = std::nullopt;
  /// add_decayed_weights(weight_decay_rate, weight_decay_mask); none: no decay.
  std::optional<LearningRate> weight_decay_rate = std::nullopt;
  /// Added to g^2 (Adafactor's epsilon1).
  float eps = 1e-30f;
  /// Factor the second moments of the leaves large enough (else a full second moment, as RMSProp).
  bool factored = true;
  Mask weight_decay_mask = {};
};

/// Adafactor (Shazeer and Stern 2018; optax.adafactor = chain(scale_by_factored_rms,
/// clip_by_block_rms, scale_by_learning_rate(flip_sign = false), scale_by_param_block_rms, ema,
/// add_decayed_weights, scale(-1)), each part as the options give it). With c the count before the
/// update, decay = 1 - (c - decay_offset + 1)^(-decay_rate) and g2 = g^2 + eps, a factored leaf whose
/// two largest dimensions are d1 and d0 (d0 the largest; the later one on a tie, as numpy.argsort)
/// keeps
///   v_row' = decay v_row + (1 - decay) mean(g2, axis d0),
///   v_col' = decay v_col + (1 - decay) mean(g2, axis d1),
/// and scales u = g / sqrt(v_row' / mean(v_row') (broadcast along d0)) / sqrt(v_col' (along d1));
/// another leaf keeps v' = decay v + (1 - decay) g2 and scales u = g / sqrt(v'). Then the options'
/// parts in order, and the update is -u. update needs the params.
/// State: "count/count", "v_row/params/...", "v_col/params/..." and "v/params/..." (Optax's
/// FactoredState: each leaf holds zeros of shape (1,) where it is not used), and with momentum
/// "ema/params/...". A non-finite decay_rate, a negative min_dim_size_to_factor, or momentum outside
/// [0, 1] is a weft::ValueError.
[[nodiscard]] GradientTransformation adafactor(AdafactorOptions options = {});

}  // namespace weft::optim
