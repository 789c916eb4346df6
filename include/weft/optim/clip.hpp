#pragma once
// Gradient clipping: optax.clip_by_global_norm, optax.clip (by value) and optax.clip_by_block_rms.
#include "weft/optim/transform.hpp"

namespace weft::optim {

/// sqrt of the sum of squares of every element of every leaf (optax.global_norm), accumulated in
/// double in sorted path order.
[[nodiscard]] float global_norm(const Variables& tree);

/// The updates unchanged when their global norm is below max_norm, else each leaf scaled as
/// (u / norm) * max_norm, so that the global norm becomes max_norm. No state. max_norm <= 0 (or NaN)
/// is a weft::ValueError.
[[nodiscard]] GradientTransformation clip_by_global_norm(float max_norm);

/// Each element of the updates clipped to [-max_delta, max_delta] (optax.clip); NaN stays NaN. No
/// state. A negative max_delta (or NaN) is a weft::ValueError.
[[nodiscard]] GradientTransformation clip(float max_delta);

/// Each leaf divided by max(1, rms / threshold), rms = sqrt(mean(u^2)) of that leaf (a "block": a
/// kernel, a bias), so that no leaf's root mean square exceeds threshold (optax.clip_by_block_rms).
/// No state. threshold <= 0 (or NaN) is a weft::ValueError.
[[nodiscard]] GradientTransformation clip_by_block_rms(float threshold);

}  // namespace weft::optim
