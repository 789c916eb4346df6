#pragma once
// Stochastic gradient descent, with optional (Nesterov) momentum: optax.sgd.
#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// updates = -learning_rate * d, where without momentum d = g, and with momentum the trace
/// t' = g + momentum * t (t starts at zero) gives d = t', or d = g + momentum * t' when `nesterov`.
/// State: "count/count" (the step count, for a schedule) and, with momentum, "trace/params/...".
/// Optax keeps no state without momentum and no count for a constant rate; weft keeps the count
/// always, so that every optimizer's state says how many steps it has made.
/// A negative or non-finite momentum is a weft::ValueError.
[[nodiscard]] GradientTransformation sgd(LearningRate learning_rate, float momentum = 0.0f, bool nesterov = false);

}  // namespace weft::optim
