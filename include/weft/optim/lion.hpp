#pragma once
// Lion (optax.lion): the sign of an interpolated momentum.
#include "weft/optim/mask.hpp"
#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// Lion (Chen et al. 2023; optax.lion = chain(scale_by_lion, add_decayed_weights, scale_by_learning_rate)):
///   updates = -learning_rate * (sign((1 - b1) g + b1 mu) + weight_decay * params),
///   mu' = (1 - b2) g + b2 mu,
/// the decay on the leaves `mask` selects only. sign(0) is 0. update needs the params. Lion's steps
/// have size learning_rate in every coordinate: use a learning rate 3-10 times smaller than AdamW's.
/// State: "count/count" and "mu/params/...", Optax's ScaleByLionState(count, mu). b1 or b2 outside
/// [0, 1), or a negative or non-finite weight_decay, is a weft::ValueError.
[[nodiscard]] GradientTransformation lion(LearningRate learning_rate, float b1 = 0.9f, float b2 = 0.99f,
                                          float weight_decay = 1e-3f, Mask mask = {});

}  // namespace weft::optim
