#pragma once
// weft::optim::GradientTransformation: an optimizer as a pair of pure functions, as in Optax.
//
//   auto tx = optim::chain(optim::clip_by_global_norm(1.0f), optim::adam(1e-3f));
//   Variables state = tx.init(params);
//   auto [updates, next_state] = tx.update(grads, state, params);
//   params = optim::apply_updates(params, updates);
//
// Params, gradients and updates are Variables of the same paths ("params/Dense_0/kernel"). The state
// is a Variables too, so that it is cheap to copy, prints, and a checkpoint saves it as it saves the
// params: Adam's holds "count/count", "mu/params/..." and "nu/params/...". Nothing is mutated; every
// update returns new tensors and a new state.
#include <concepts>
#include <functional>
#include <utility>
#include <vector>

#include "weft/variables.hpp"

namespace weft::optim {

struct GradientTransformation {
  /// The initial state for `params` (zeros for moments, a step count of 0).
  std::function<Variables(const Variables& params)> init;
  /// (updates, new state) from the gradients (or the updates of a previous transformation in a chain),
  /// the current state, and the params (an empty Variables where the transformation does not use them).
  std::function<std::pair<Variables, Variables>(const Variables& grads, const Variables& state, const Variables& params)>
      update;
};

/// The transformations applied one after the other (optax.chain): part i sees the updates of part
/// i - 1. Its state holds part i's state under "i/" ("0/count/count", "1/mu/params/...").
[[nodiscard]] GradientTransformation chain(std::vector<GradientTransformation> parts);

template <std::same_as<GradientTransformation>... Parts>
[[nodiscard]] GradientTransformation chain(const GradientTransformation& first, const Parts&... rest) {
  return chain(std::vector<GradientTransformation>{first, rest...});
}

/// params + updates, leaf by leaf (optax.apply_updates). Both must have the same paths and shapes:
/// otherwise a weft::KeyError naming the first path in one and not the other, or a weft::ShapeError
/// naming the path and both shapes.
[[nodiscard]] Variables apply_updates(const Variables& params, const Variables& updates);

}  // namespace weft::optim
