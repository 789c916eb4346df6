#pragma once
// optax.inject_hyperparams: hyperparameters that live in the optimizer state, where the caller can
// read them (the learning rate a schedule gave this step) and change them between steps.
//
//   auto tx = optim::inject_hyperparams(
//       [](const optim::Hyperparams& h) { return optim::adam(h.at("learning_rate"), h.at("b1")); },
//       {{"learning_rate", 1e-3f}, {"b1", 0.9f}});
//   Variables state = tx.init(params);
//   ... after a few steps, a smaller learning rate:
//   state = optim::set_hyperparam(state, "learning_rate", 1e-4f);
//   float lr = optim::hyperparam(state, "learning_rate");   // 1e-4
#include <map>
#include <string>
#include <string_view>

#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// The hyperparameters' values at one step, by name.
using Hyperparams = std::map<std::string, float, std::less<>>;

/// The transformation that `factory` makes from the current values of `hyperparams`, rebuilt at each
/// update (optax.inject_hyperparams(factory)(**hyperparams)). A hyperparameter given as a number is
/// read from the state at each update, so that the caller can change it (set_hyperparam); one given as
/// a schedule is evaluated at the count before the update (changing it in the state has no effect,
/// as in Optax). State: "count/count", "hyperparams/NAME" (float32 scalars: after an update, the
/// values that update used) and the inner state under "inner_state/", Optax's
/// InjectHyperparamsState(count, hyperparams, inner_state). A name that is not a path segment (empty,
/// or with '/') is a weft::ValueError.
[[nodiscard]] GradientTransformation inject_hyperparams(std::function<GradientTransformation(const Hyperparams&)> factory,
                                                        std::map<std::string, LearningRate> hyperparams);

/// The hyperparameter `name` of an inject_hyperparams state (of the state itself: in a chain, pass
/// state.unprefixed("1") for the second part). A missing one is a weft::KeyError.
[[nodiscard]] float hyperparam(const Variables& state, std::string_view name);

/// The state with the hyperparameter `name` set to `value`, for the next update. A name the state does
/// not have is a weft::KeyError; a non-finite value is a weft::ValueError.
[[nodiscard]] Variables set_hyperparam(const Variables& state, std::string_view name, float value);

}  // namespace weft::optim
