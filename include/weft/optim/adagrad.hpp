#pragma once
// Adagrad (optax.adagrad).
#include "weft/optim/schedule.hpp"
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// Adagrad (optax.adagrad = chain(scale_by_rss, scale_by_learning_rate)):
///   sum_of_squares' = g^2 + sum_of_squares   (it starts at initial_accumulator_value),
///   updates = -learning_rate * g / sqrt(sum_of_squares' + eps), or 0 where sum_of_squares' is 0.
/// State: "count/count" and "sum_of_squares/params/...". A negative or non-finite
/// initial_accumulator_value or eps is a weft::ValueError.
[[nodiscard]] GradientTransformation adagrad(LearningRate learning_rate, float initial_accumulator_value = 0.1f,
                                             float eps = 1e-7f);

}  // namespace weft::optim
