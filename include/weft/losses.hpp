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

}  // namespace weft::losses
