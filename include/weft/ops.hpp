#pragma once
// Pure ops on weft::Tensor, with NumPy broadcasting and Flax/NumPy semantics.
//
// Every op returns a new tensor and leaves its inputs unchanged. Under
// weft::grad the same ops record how their result was computed, so one set
// of names serves both inference and training. Shape errors are
// weft::ShapeError and name the op and the shapes involved.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "weft/tensor.hpp"

namespace weft {

// ---------------------------------------------------------------- axes

/// A set of axes for a reduction: one axis (`1`, `-1`), a list (`{0, 2}`), or all axes (`Axes::all()`,
/// the default). Negative axes count from the end.
class Axes {
 public:
  Axes() = default;  // all axes
  Axes(int axis) : axes_{axis}, all_(false) {}  // NOLINT: an int is an axis
  Axes(std::initializer_list<int> axes) : axes_(axes), all_(false) {}
  explicit Axes(std::vector<int> axes) : axes_(std::move(axes)), all_(false) {}
  static Axes all() { return {}; }

  [[nodiscard]] bool is_all() const noexcept { return all_; }
  [[nodiscard]] const std::vector<int>& list() const noexcept { return axes_; }

 private:
  std::vector<int> axes_;
  bool all_ = true;
};

// ---------------------------------------------------------------- elementwise

/// Arithmetic with broadcasting. Both operands have the same dtype (no implicit promotion);
/// int32 supports + - * and negation, which wrap modulo 2^32 on overflow (two's complement, as
/// JAX's int32), but not /.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, float b);
Tensor operator+(float a, const Tensor& b);
Tensor operator-(const Tensor& a, float b);
Tensor operator-(float a, const Tensor& b);
Tensor operator*(const Tensor& a, float b);
Tensor operator*(float a, const Tensor& b);
Tensor operator/(const Tensor& a, float b);
Tensor operator/(float a, const Tensor& b);

Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
/// GELU; `approximate = true` (Flax's default) is the tanh approximation, false the exact erf form.
Tensor gelu(const Tensor& x, bool approximate = true);
/// x * sigmoid(x).
Tensor silu(const Tensor& x);
/// jax.nn.swish: the same function as silu (an alias there too); errors name weft::swish.
Tensor swish(const Tensor& x);
/// jax.nn.leaky_relu: x where x >= 0, else negative_slope * x. The gradient at 0 is 1 (jax's
/// where(x >= 0, ...)).
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.01f);
/// jax.nn.elu: x where x > 0, else alpha * expm1(x). The gradient at 0 is alpha (jax takes the
/// expm1 branch there); elu(-inf) = -alpha.
Tensor elu(const Tensor& x, float alpha = 1.0f);
/// jax.nn.selu: scale * elu(x, alpha) with jax's constants scale = 1.0507009873554804934193349852946
/// and alpha = 1.6732632423543772848170429916717. The gradient at 0 is scale * alpha, as jax's.
Tensor selu(const Tensor& x);
/// jax.nn.celu: max(x, 0) + alpha * expm1(min(x, 0) / alpha). Continuously differentiable: the
/// gradient at 0 is 1. alpha must be nonzero (a ValueError otherwise; jax would return NaN).
Tensor celu(const Tensor& x, float alpha = 1.0f);
/// jax.nn.softplus, log(1 + exp(x)), computed as log1p(exp(-|x|)) + max(x, 0): finite for any finite
/// x, softplus(0) = log 2. Gradient sigmoid(x).
Tensor softplus(const Tensor& x);
/// jax.nn.log_sigmoid, log(sigmoid(x)) = -softplus(-x), computed without overflow for any x.
/// Gradient sigmoid(-x).
Tensor log_sigmoid(const Tensor& x);
/// jax.nn.hard_tanh: x clipped to [-1, 1]. The gradient is 1 on [-1, 1] (at exactly +-1 too, as jax's
/// where(x > 1, 1, where(x < -1, -1, x))) and 0 outside.
Tensor hard_tanh(const Tensor& x);
/// jax.nn.glu: splits `x` into halves a, b along `axis` and returns a * sigmoid(b), whose extent
/// along `axis` is half of x's. An odd extent is a ShapeError naming the axis (jax asserts).
Tensor glu(const Tensor& x, int axis = -1);
/// jax.nn.standardize: (x - mean) / sqrt(var + epsilon) over `axes` (keeping x's shape), with var the
/// mean of squared deviations. jax computes var as E[x^2] - E[x]^2; weft subtracts the mean first,
/// which agrees up to rounding and does not cancel when the mean is large against the spread.
/// Differentiable through the mean and the variance.
Tensor standardize(const Tensor& x, const Axes& axes = -1, float epsilon = 1e-5f);
/// Elementwise power with a scalar exponent.
Tensor pow(const Tensor& x, float exponent);
/// Clamp into [lo, hi].
Tensor clip(const Tensor& x, float lo, float hi);

/// Comparisons with broadcasting; the result is an int32 mask of 0 and 1.
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, float b);
Tensor operator<=(const Tensor& a, float b);
Tensor operator>(const Tensor& a, float b);
Tensor operator>=(const Tensor& a, float b);

/// Elements of `a` where `condition` (int32, nonzero = true) holds, else of `b`; all three broadcast.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);

/// The value with no gradient flowing back through it.
Tensor stop_gradient(const Tensor& x);

/// Converts between float32 and int32. Float to int truncates toward zero and saturates, as XLA's
/// conversion does: NaN becomes 0, values below -2^31 (and -inf) INT32_MIN, values of 2^31 and
/// above (and +inf) INT32_MAX.
Tensor astype(const Tensor& x, DType dtype);

// ---------------------------------------------------------------- reductions

Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
/// Biased variance (ddof = 0), as NumPy's default.
Tensor var(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
/// Index of the largest element along `axis` (first one on ties), as int32.
Tensor argmax(const Tensor& x, int axis = -1, bool keepdims = false);

Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdims = false);
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);

// ---------------------------------------------------------------- linear algebra

struct MatmulOptions {
  bool transpose_a = false;  ///< use the last two axes of `a` transposed, without copying it
  bool transpose_b = false;  ///< use the last two axes of `b` transposed, without copying it
};

/// NumPy matmul: 1-D operands are promoted to a row (a) or column (b) and the promoted axis removed
/// afterwards; leading (batch) axes broadcast. Runs on the GEMM backend.
Tensor matmul(const Tensor& a, const Tensor& b, MatmulOptions options = {});

// ---------------------------------------------------------------- shape ops

/// Same elements in a new shape; one extent may be -1 (inferred). Shares the buffer.
Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape);
Tensor reshape(const Tensor& x, std::initializer_list<std::int64_t> shape);
Tensor reshape(const Tensor& x, const Shape& shape);
/// Permutes axes; without `perm`, reverses them (NumPy's default).
Tensor transpose(const Tensor& x, const std::vector<int>& perm = {});
Tensor broadcast_to(const Tensor& x, const Shape& shape);
/// Joins tensors along `axis`; all other extents must agree.
Tensor concat(const std::vector<Tensor>& xs, int axis = 0);
/// lax.slice: elements from `start` (inclusive) to `limit` (exclusive) with optional `strides`,
/// one entry per axis.
Tensor slice(const Tensor& x, const std::vector<std::int64_t>& start, const std::vector<std::int64_t>& limit,
             const std::vector<std::int64_t>& strides = {});
/// Elements [start, stop) along one axis.
Tensor slice_axis(const Tensor& x, int axis, std::int64_t start, std::int64_t stop);
/// Rows of `x` along axis 0 selected by int32 `indices` (any shape): result shape indices.shape + x.shape[1:].
/// An index outside [0, x.shape[0]) is an error.
Tensor take(const Tensor& x, const Tensor& indices);
/// One-hot float32 encoding of int32 `labels` with `num_classes` classes, on a new last axis.
/// Labels outside [0, num_classes) give all-zero rows, as jax.nn.one_hot.
Tensor one_hot(const Tensor& labels, std::int64_t num_classes);

/// The broadcast shape of two shapes (NumPy rules); throws ShapeError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op = "broadcast_shapes");

// ---------------------------------------------------------------- convolution and pooling

/// Padding of a spatial op: "SAME", "VALID", or explicit (low, high) pairs, one per spatial axis.
class Padding {
 public:
  Padding(const char* mode);  // NOLINT: "SAME" or "VALID"
  Padding(std::string mode);  // NOLINT
  Padding(std::vector<std::pair<std::int64_t, std::int64_t>> pairs);  // NOLINT
  Padding(std::initializer_list<std::pair<std::int64_t, std::int64_t>> pairs);  // NOLINT

  [[nodiscard]] bool is_same() const noexcept { return mode_ == Mode::same; }
  [[nodiscard]] bool is_valid() const noexcept { return mode_ == Mode::valid; }
  [[nodiscard]] const std::vector<std::pair<std::int64_t, std::int64_t>>& pairs() const noexcept { return pairs_; }
  [[nodiscard]] std::string str() const;

  /// The explicit (low, high) padding for each spatial axis, as XLA computes it for SAME.
  [[nodiscard]] std::vector<std::pair<std::int64_t, std::int64_t>> resolve(
      const std::vector<std::int64_t>& in, const std::vector<std::int64_t>& window,
      const std::vector<std::int64_t>& strides, const std::vector<std::int64_t>& dilation, const char* op) const;

 private:
  enum class Mode { same, valid, explicit_pairs };
  Mode mode_ = Mode::valid;
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs_;
};

struct Conv2dOptions {
  std::vector<std::int64_t> strides = {1, 1};
  Padding padding = "SAME";
  std::vector<std::int64_t> dilation = {1, 1};  ///< kernel (rhs) dilation
  std::int64_t feature_group_count = 1;
};

/// 2-D convolution (cross-correlation, as lax.conv_general_dilated): input NHWC, kernel HWIO with
/// I = C / feature_group_count. Output NHWC with O channels.
Tensor conv2d(const Tensor& x, const Tensor& kernel, const Conv2dOptions& options = {});

struct PoolOptions {
  std::vector<std::int64_t> window = {2, 2};
  std::vector<std::int64_t> strides = {};  ///< empty means 1 along each axis (Flax's default)
  Padding padding = "VALID";
  bool count_include_pad = true;  ///< avg_pool only: divide by the full window, as Flax's default
};

/// Max and average pooling over the spatial axes of an NHWC tensor.
Tensor max_pool(const Tensor& x, const PoolOptions& options = {});
Tensor avg_pool(const Tensor& x, const PoolOptions& options = {});

}  // namespace weft
