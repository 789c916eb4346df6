#pragma once
// Internal: the fused ops that the core layers and the losses call where a chain of public ops
// would make several passes over memory. Each one checks nothing (its caller has), computes its
// output in one or two passes, and records its own gradient, so callers stay plain ops code.
// Adding one: CONTRIBUTING.md.
#include <cstdint>

#include "weft/random.hpp"
#include "weft/tensor.hpp"

namespace weft::detail {

/// Layer norm over the last axis of float32 x, viewed as (rows, c): two passes over each row (mean,
/// then the centred variance), then y = (x - mean) / sqrt(var + epsilon) * scale + bias. `scale`
/// and `bias`, (c,), may be empty (left out). The gradient is fused as well.
[[nodiscard]] Tensor layer_norm_last_axis(const Tensor& x, const Tensor& scale, const Tensor& bias, float epsilon);

/// The output of batch_norm_last_axis: y, and the batch mean and biased variance (c,), untracked.
struct BatchNormOut {
  Tensor y, mean, var;
};

/// Training-mode batch norm over every axis but the last, float32 x viewed as (rows, c), rows >= 1
/// (a ShapeError otherwise): one pass for the statistics, one pass for y = (x - mean) * a + bias
/// with a = scale / sqrt(var + eps). The statistics are per-chunk float sums of d = x - pivot and
/// d^2, chunks of a fixed size combined in order in double (deterministic), with mean = pivot +
/// mean(d) and var = mean(d^2) - mean(d)^2. The pivot, each channel's mean over the first chunk of
/// rows, is close to the batch mean, so the subtraction cancels little and the variance is as
/// accurate as the two-pass formula even when a channel's mean is large against its spread
/// (Flax's mean(x^2) - mean(x)^2 in float32 is not, nor were unshifted sums). The gradient is two
/// passes as well. `scale` and `bias` may be empty.
[[nodiscard]] BatchNormOut batch_norm_last_axis(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                                float epsilon);

/// Inverted dropout of float32 x with keep probability `keep` in (0, 1): y = x / keep where
/// unit_float(bits) < keep (jax.random.bernoulli(key, keep, x.shape)), else 0, the bits drawn tile
/// by tile without storing them. Tracked x keeps a byte mask for the gradient.
[[nodiscard]] Tensor dropout(const Tensor& x, Key key, float keep);

}  // namespace weft::detail
