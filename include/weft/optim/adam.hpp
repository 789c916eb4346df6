#pragma once
// Adam and AdamW: optax.adam and optax.adamw.
#include "weft/optim/mask.hpp"
#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// Adam (optax.adam with eps_root = 0): with t the step count after this update,
///   mu' = (1 - b1) g + b1 mu,   nu' = (1 - b2) g^2 + b2 nu,
///   updates = -learning_rate * (mu' / (1 - b1^t)) / (sqrt(nu' / (1 - b2^t)) + eps).
/// The learning rate (a schedule) is taken at the count before the update. One fused pass per tensor.
/// State: "count/count" (int32 scalar), "mu/params/..." and "nu/params/..." (one per param).
/// Optax nests one state per chained part (ScaleByAdamState, then the schedule's own count); weft
/// keeps one count for both, which gives the same numbers.
/// b1 or b2 outside [0, 1), or a negative or non-finite eps, is a weft::ValueError.
[[nodiscard]] GradientTransformation adam(LearningRate learning_rate, float b1 = 0.9f, float b2 = 0.999f,
                                          float eps = 1e-8f);

/// AdamW (optax.adamw): decoupled weight decay,
///   updates = -learning_rate * (adam_direction + weight_decay * params),
/// with adam_direction the bracket of adam above, and the decay only on the leaves `mask` selects
/// (Optax's mask argument; the usual use exempts biases and norm scales, see weft/optim/mask.hpp).
/// update needs the params. The same state as adam, whatever the mask (Optax nests the decay's empty
/// state in a MaskedState). A negative or non-finite weight_decay is a weft::ValueError.
[[nodiscard]] GradientTransformation adamw(LearningRate learning_rate, float b1 = 0.9f, float b2 = 0.999f,
                                           float eps = 1e-8f, float weight_decay = 1e-4f, Mask mask = {});

}  // namespace weft::optim
