#pragma once
// Building blocks to chain: optax.scale, optax.scale_by_schedule and optax.add_decayed_weights.
//
//   // SGD with decoupled weight decay on the kernels only, by hand:
//   auto tx = optim::chain(optim::add_decayed_weights(1e-4f, kernels_only), optim::scale(-0.1f));
#include "weft/optim/mask.hpp"
#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// updates * step_size (optax.scale). No state. A non-finite step_size is a weft::ValueError.
[[nodiscard]] GradientTransformation scale(float step_size);

/// updates * step_size_fn(count), with count the number of updates made before this one
/// (optax.scale_by_schedule; the schedule is not negated, unlike a learning rate). State:
/// "count/count". An empty schedule is a weft::ValueError.
[[nodiscard]] GradientTransformation scale_by_schedule(Schedule step_size_fn);

/// updates + weight_decay * params on the leaves `mask` selects (optax.add_decayed_weights); update
/// needs the params. weight_decay may be a schedule of the count. State: none for a constant weight
/// decay, "count/count" for a schedule; with a mask that is not every leaf, that state under
/// "inner_state/" (it is masked(add_decayed_weights(weight_decay), mask), as in Optax).
[[nodiscard]] GradientTransformation add_decayed_weights(LearningRate weight_decay = 0.0f, Mask mask = {});

}  // namespace weft::optim
