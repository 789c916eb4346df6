#pragma once
// Gradient clipping: optax.clip_by_global_norm.
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// sqrt of the sum of squares of every element of every leaf (optax.global_norm), accumulated in
/// double in sorted path order.
[[nodiscard]] float global_norm(const Variables& tree);

/// The updates unchanged when their global norm is below max_norm, else each leaf scaled as
/// (u / norm) * max_norm, so that the global norm becomes max_norm. No state. max_norm <= 0 (or NaN)
/// is a weft::ValueError.
[[nodiscard]] GradientTransformation clip_by_global_norm(float max_norm);

}  // namespace weft::optim
