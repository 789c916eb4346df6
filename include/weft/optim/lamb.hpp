#pragma once
// LAMB (optax.lamb): Adam's direction scaled per layer by a trust ratio.
#include "weft/optim/mask.hpp"
#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// LAMB (You et al. 2020; optax.lamb = chain(scale_by_adam, add_decayed_weights, scale_by_trust_ratio,
/// scale_by_learning_rate)). With t the count after this update, per leaf:
///   mu' and nu' as Adam's,
///   d = (mu' / (1 - b1^t)) / (sqrt(nu' / (1 - b2^t) + eps_root) + eps) + weight_decay * params,
///   updates = -learning_rate * d * ||params|| / ||d||   (the ratio is 1 when either norm is 0),
/// the decay on the leaves `mask` selects only; the norms are each leaf's (a "layer"). update needs
/// the params. State: "count/count", "mu/params/..." and "nu/params/...", as adam's. b1 or b2 outside
/// [0, 1), or a negative or non-finite eps, eps_root or weight_decay, is a weft::ValueError.
[[nodiscard]] GradientTransformation lamb(LearningRate learning_rate, float b1 = 0.9f, float b2 = 0.999f,
                                          float eps = 1e-6f, float eps_root = 0.0f, float weight_decay = 0.0f,
                                          Mask mask = {});

}  // namespace weft::optim
