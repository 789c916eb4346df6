#pragma once
// RMSProp (optax.rmsprop), plain or centred, with optional (Nesterov) momentum.
#include <optional>

#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// RMSProp (optax.rmsprop: scale_by_rms, or scale_by_stddev when `centered`, then the learning rate,
/// then optax.trace when `momentum` is given). With t the count after this update:
///   nu' = (1 - decay) g^2 + decay nu    (nu starts at initial_scale),
///   mu' = (1 - decay) g + decay mu      (centered only; mu starts at 0),
///   with bias_correction, nu^ = nu' / (1 - decay^t) and mu^ = mu' / (1 - decay^t), else nu', mu',
///   s = nu^ - (mu^)^2 (centered) or nu^,
///   x = -learning_rate * g / sqrt(s + eps)      (eps_in_sqrt, the default), or g / (sqrt(s) + eps),
/// and without momentum the update is x; with it, trace' = x + momentum * trace and the update is
/// trace' (or x + momentum * trace' when `nesterov`). The learning rate is taken at the count before
/// the update.
/// State: "count/count", "nu/params/...", "mu/params/..." (centered), "trace/params/..." (momentum).
/// Optax keeps a count only with bias_correction or a schedule; weft keeps it always, as sgd does.
/// decay outside [0, 1), a negative or non-finite eps, initial_scale or momentum is a weft::ValueError.
[[nodiscard]] GradientTransformation rmsprop(LearningRate learning_rate, float decay = 0.9f, float eps = 1e-8f,
                                             float initial_scale = 0.0f, bool eps_in_sqrt = true,
                                             bool centered = false, std::optional<float> momentum = std::nullopt,
                                             bool nesterov = false, bool bias_correction = false);

}  // namespace weft::optim
