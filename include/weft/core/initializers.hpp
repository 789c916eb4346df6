#pragma once
// Parameter initializers with JAX's semantics and defaults (jax.nn.initializers):
// each factory returns an Initializer, (key, shape) -> tensor. With weft's
// JAX-compatible keys, a parameter initialised with the same key gets the same
// values as in Flax.
#include <string_view>

#include "weft/core/scope.hpp"

namespace weft::core::initializers {

[[nodiscard]] Initializer zeros();
[[nodiscard]] Initializer ones();
[[nodiscard]] Initializer constant(float value);
/// normal(key, shape) * stddev.
[[nodiscard]] Initializer normal(float stddev = 1e-2f);
/// Uniform in [0, scale).
[[nodiscard]] Initializer uniform(float scale = 1e-2f);
/// truncated_normal(key, lower, upper, shape) * stddev.
[[nodiscard]] Initializer truncated_normal(float stddev = 1e-2f, float lower = -2.0f, float upper = 2.0f);

enum class FanMode { fan_in, fan_out, fan_avg };
enum class Distribution { truncated_normal, normal, uniform };

/// variance = scale / fan (fan_in, fan_out or their mean), with fans computed as JAX does: the
/// receptive field (product of the axes other than in_axis and out_axis) times the in or out extent.
/// truncated_normal draws in [-2, 2] with stddev sqrt(variance) / 0.87962566103423978 (the stddev
/// of a standard normal truncated there); uniform draws in [-1, 1) scaled by sqrt(3 * variance).
[[nodiscard]] Initializer variance_scaling(float scale, FanMode mode, Distribution distribution, int in_axis = -2,
                                           int out_axis = -1);
[[nodiscard]] Initializer lecun_normal(int in_axis = -2, int out_axis = -1);  ///< default kernel initializer
[[nodiscard]] Initializer lecun_uniform(int in_axis = -2, int out_axis = -1);
[[nodiscard]] Initializer glorot_normal(int in_axis = -2, int out_axis = -1);
[[nodiscard]] Initializer glorot_uniform(int in_axis = -2, int out_axis = -1);
[[nodiscard]] Initializer he_normal(int in_axis = -2, int out_axis = -1);
[[nodiscard]] Initializer he_uniform(int in_axis = -2, int out_axis = -1);

/// jax.nn.initializers.orthogonal: the shape flattened to a (rows, columns) matrix, columns the
/// extent of column_axis, drawn as normal(key) (transposed first when rows < columns), replaced
/// by the Q of its QR decomposition with R's diagonal made positive, then scaled. The result has
/// orthonormal columns (or rows, when rows < columns). weft computes Q by modified Gram-Schmidt
/// in double precision, where JAX calls LAPACK in float32: the same matrix up to rounding (about
/// 1e-6), not bit for bit. Shapes of rank < 2 are an error. Flax's recurrent kernel initializer.
[[nodiscard]] Initializer orthogonal(float scale = 1.0f, int column_axis = -1);

/// (fan_in, fan_out) of `shape`, as jax.nn.initializers computes them; shapes of rank < 2 are an error.
[[nodiscard]] std::pair<double, double> compute_fans(const Shape& shape, int in_axis = -2, int out_axis = -1);

}  // namespace weft::core::initializers
