#pragma once
// weft::losses: the loss functions of optax.losses, per example (reduce them with weft::mean).
//
// Each returns the loss of every example (or element) and leaves the reduction to the caller, as
// optax does. Under weft::grad they record fused gradients, so a training step pays for one node.
// Where optax would broadcast two operands silently, weft asks for the shapes it documents: a
// (batch, 1) prediction against (batch,) targets would otherwise give a (batch, batch) loss.
#include "weft/tensor.hpp"

namespace weft::losses {

/// Softmax cross entropy of `logits` (float32, classes on the last axis) against `labels`:
/// - int32 labels of shape logits.shape[:-1], each in [0, classes): log(sum(exp(logits))) -
///   logits[label], as optax.softmax_cross_entropy_with_integer_labels;
/// - float32 labels of logits' shape (one-hot or soft distributions): -sum(labels *
///   log_softmax(logits)), as optax.softmax_cross_entropy.
/// Returns one loss per example, of shape logits.shape[:-1]. Numerically stable (log-sum-exp).
/// Gradient: (softmax(logits) * sum(labels) - labels) times the incoming gradient, i.e. softmax
/// minus labels for distributions; float labels get -log_softmax(logits) when tracked.
/// A label outside [0, classes) is a weft::ValueError naming the label and its position (optax would
/// return a wrong number); shapes that do not fit are a weft::ShapeError naming both.
[[nodiscard]] Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels);

/// The same for int32 labels only, under optax's name.
[[nodiscard]] Tensor softmax_cross_entropy_with_integer_labels(const Tensor& logits, const Tensor& labels);

/// Elementwise binary cross entropy of `logits` against float32 `labels` of the same shape (0/1 or
/// probabilities): max(x, 0) - x * z + log1p(exp(-|x|)), stable for any logit, as
/// optax.sigmoid_binary_cross_entropy. Gradient sigmoid(x) - z for the logits, -x for the labels.
[[nodiscard]] Tensor sigmoid_binary_cross_entropy(const Tensor& logits, const Tensor& labels);

/// 0.5 * (predictions - targets)^2 elementwise (optax.l2_loss); without targets, 0.5 * predictions^2.
[[nodiscard]] Tensor l2_loss(const Tensor& predictions, const Tensor& targets = {});

/// (predictions - targets)^2 elementwise (optax.squared_error); without targets, predictions^2.
[[nodiscard]] Tensor squared_error(const Tensor& predictions, const Tensor& targets = {});

/// optax.huber_loss, elementwise: with e = predictions - targets (or predictions alone without
/// targets), 0.5 * e^2 where |e| <= delta and delta * (|e| - 0.5 * delta) beyond. Gradient
/// clip(e, -delta, delta) for the predictions and its negative for the targets. Shapes must agree;
/// delta must be positive and finite (a weft::ValueError; optax does not check).
[[nodiscard]] Tensor huber_loss(const Tensor& predictions, const Tensor& targets = {}, float delta = 1.0f);

/// optax.kl_divergence: sum over the last axis of targets * (log(targets) - log_predictions), for
/// `log_predictions` (log-probabilities, e.g. log_softmax) and `targets` (probabilities) of the same
/// float32 shape, rank >= 1; the result has shape targets.shape[:-1]. A term whose target is 0 is
/// exactly 0, even against a log-prediction of -inf (where optax gives NaN). Gradient -targets for
/// the log-predictions; log(targets) - log_predictions + 1 for the targets, and -log_predictions
/// where a target is 0 (optax's is NaN there).
[[nodiscard]] Tensor kl_divergence(const Tensor& log_predictions, const Tensor& targets);

/// optax.cosine_similarity: sum(p * t) / (norm(p) * norm(t)) over the last axis, for two float32
/// tensors of the same shape, rank >= 1; the result has shape predictions.shape[:-1]. As optax's
/// safe norm, a norm of at most `epsilon` counts as `epsilon` and passes no gradient, so with the
/// default epsilon = 0 a zero vector gives NaN (pass a small epsilon to get 0). epsilon must be
/// nonnegative (a weft::ValueError).
[[nodiscard]] Tensor cosine_similarity(const Tensor& predictions, const Tensor& targets, float epsilon = 0.0f);

/// optax.cosine_distance: 1 - cosine_similarity(predictions, targets, epsilon).
[[nodiscard]] Tensor cosine_distance(const Tensor& predictions, const Tensor& targets, float epsilon = 0.0f);

/// optax.hinge_loss, elementwise: max(0, 1 - predictor_outputs * targets), with targets in {-1, 1}
/// (float32, of the outputs' shape). Gradient -targets (and -predictor_outputs for the targets)
/// where the margin is violated, half of that where 1 - output * target is exactly 0 (as jax's
/// maximum at a tie), 0 elsewhere.
[[nodiscard]] Tensor hinge_loss(const Tensor& predictor_outputs, const Tensor& targets);

/// optax.smooth_labels: (1 - alpha) * labels + alpha / num_categories for float32 one-hot `labels`
/// with the categories on the last axis. alpha must lie in [0, 1] (a weft::ValueError; optax does
/// not check). Differentiable in the labels (gradient 1 - alpha).
[[nodiscard]] Tensor smooth_labels(const Tensor& labels, float alpha);

}  // namespace weft::losses
