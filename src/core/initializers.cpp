#include "weft/core/initializers.hpp"

#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "weft/error.hpp"
#include "weft/ops.hpp"

namespace weft::core {

Tensor Initializer::operator()(Key key, const Shape& shape) const {
  if (!fn_)
    throw ValueError(fmt::format("weft::core::Initializer: an empty initializer was called for a parameter of shape "
                                 "{}; give the layer an initializer such as core::initializers::zeros()",
                                 shape.str()));
  return (*fn_)(key, shape);
}

Initializer detail::program_lifetime(const Initializer& owner) {
  Initializer handle;
  // The aliasing constructor with an empty owner: a pointer without a control block to count.
  handle.fn_ = std::shared_ptr<const std::function<Tensor(Key, const Shape&)>>(
      std::shared_ptr<const std::function<Tensor(Key, const Shape&)>>(), owner.fn_.get());
  return handle;
}

}  // namespace weft::core

namespace weft::core::initializers {

// The defaults every module value holds are made once and live until the program ends: copying one
// then costs neither an allocation nor a reference count (immutable, so sharing them is safe).
Initializer zeros() {
  static const Initializer owner = [](Key, const Shape& shape) { return weft::zeros(shape); };
  static const Initializer init = detail::program_lifetime(owner);
  return init;
}
Initializer ones() {
  static const Initializer owner = [](Key, const Shape& shape) { return weft::ones(shape); };
  static const Initializer init = detail::program_lifetime(owner);
  return init;
}
Initializer constant(float value) {
  return [value](Key, const Shape& shape) { return weft::full(shape, value); };
}
Initializer normal(float stddev) {
  return [stddev](Key key, const Shape& shape) { return weft::normal(key, shape) * stddev; };
}
Initializer uniform(float scale) {
  return [scale](Key key, const Shape& shape) { return weft::uniform(key, shape) * scale; };
}
Initializer truncated_normal(float stddev, float lower, float upper) {
  return [=](Key key, const Shape& shape) { return weft::truncated_normal(key, lower, upper, shape) * stddev; };
}

std::pair<double, double> compute_fans(const Shape& shape, int in_axis, int out_axis) {
  if (shape.rank() < 2)
    throw ValueError(fmt::format("weft::core::initializers: cannot compute input and output sizes of a {}-dimensional "
                                 "weights tensor {}; variance-scaling initializers need at least 2 axes (use "
                                 "zeros/normal for biases)",
                                 shape.rank(), shape.str()));
  const int ia = normalize_axis(in_axis, shape.rank(), "initializers::compute_fans");
  const int oa = normalize_axis(out_axis, shape.rank(), "initializers::compute_fans");
  // JAX's formula, also when in_axis and out_axis name the same axis (Embed's out_axis=0):
  // receptive field = size / in extent / out extent.
  const double in = static_cast<double>(shape[ia]), out = static_cast<double>(shape[oa]);
  const double receptive = static_cast<double>(shape.numel()) / in / out;
  return {in * receptive, out * receptive};
}

Initializer variance_scaling(float scale, FanMode mode, Distribution distribution, int in_axis, int out_axis) {
  if (!(scale > 0.0f)) throw ValueError("weft::core::initializers::variance_scaling: scale must be positive");
  return [=](Key key, const Shape& shape) {
    const auto [fan_in, fan_out] = compute_fans(shape, in_axis, out_axis);
    const double denominator = mode == FanMode::fan_in ? fan_in : mode == FanMode::fan_out ? fan_out : (fan_in + fan_out) / 2;
    // The same float32 steps as jax.nn.initializers.variance_scaling, so values match to the bit.
    const auto variance = static_cast<float>(static_cast<double>(scale) / denominator);
    switch (distribution) {
      case Distribution::truncated_normal: {
        // 0.879...: the stddev of a standard normal truncated to [-2, 2].
        const float stddev = std::sqrt(variance) / 0.87962566103423978f;
        return weft::truncated_normal(key, -2.0f, 2.0f, shape) * stddev;
      }
      case Distribution::normal:
        return weft::normal(key, shape) * std::sqrt(variance);
      case Distribution::uniform:
        return weft::uniform(key, shape, -1.0f, 1.0f) * std::sqrt(3.0f * variance);
    }
    throw ValueError("weft::core::initializers::variance_scaling: unknown distribution");
  };
}

Initializer lecun_normal(int in_axis, int out_axis) {
  static const Initializer owner = variance_scaling(1.0f, FanMode::fan_in, Distribution::truncated_normal);
  static const Initializer default_axes = detail::program_lifetime(owner);
  if (in_axis == -2 && out_axis == -1) return default_axes;
  return variance_scaling(1.0f, FanMode::fan_in, Distribution::truncated_normal, in_axis, out_axis);
}
Initializer lecun_uniform(int in_axis, int out_axis) {
  return variance_scaling(1.0f, FanMode::fan_in, Distribution::uniform, in_axis, out_axis);
}
Initializer glorot_normal(int in_axis, int out_axis) {
  return variance_scaling(1.0f, FanMode::fan_avg, Distribution::truncated_normal, in_axis, out_axis);
}
Initializer glorot_uniform(int in_axis, int out_axis) {
  return variance_scaling(1.0f, FanMode::fan_avg, Distribution::uniform, in_axis, out_axis);
}
Initializer he_normal(int in_axis, int out_axis) {
  return variance_scaling(2.0f, FanMode::fan_in, Distribution::truncated_normal, in_axis, out_axis);
}
Initializer he_uniform(int in_axis, int out_axis) {
  return variance_scaling(2.0f, FanMode::fan_in, Distribution::uniform, in_axis, out_axis);
}

namespace {

Initializer make_orthogonal(float scale, int column_axis) {
  return [=](Key key, const Shape& shape) {
    if (shape.rank() < 2)
      throw ValueError(fmt::format("weft::core::initializers::orthogonal: orthogonal initializer requires at least a "
                                   "2D shape, got {}; use zeros/normal for biases",
                                   shape.str()));
    const int axis = normalize_axis(column_axis, shape.rank(), "initializers::orthogonal");
    if (shape.numel() == 0) return weft::zeros(shape);
    const std::int64_t cols = shape[axis], rows = shape.numel() / cols;
    const bool transposed = rows < cols;
    const std::int64_t m = transposed ? cols : rows, n = transposed ? rows : cols;  // m >= n
    const std::vector<float> a = weft::normal(key, Shape{m, n}).to_vector();
    // Modified Gram-Schmidt on the columns of the (m, n) matrix: Q with R's diagonal positive,
    // which is JAX's Q * sign(diag(R)).
    std::vector<double> q(a.begin(), a.end());
    auto at = [&](std::int64_t i, std::int64_t j) -> double& { return q[static_cast<std::size_t>(i * n + j)]; };
    for (std::int64_t j = 0; j < n; ++j) {
      for (std::int64_t k = 0; k < j; ++k) {
        double dot = 0;
        for (std::int64_t i = 0; i < m; ++i) dot += at(i, k) * at(i, j);
        for (std::int64_t i = 0; i < m; ++i) at(i, j) -= dot * at(i, k);
      }
      double norm = 0;
      for (std::int64_t i = 0; i < m; ++i) norm += at(i, j) * at(i, j);
      norm = std::sqrt(norm);
      for (std::int64_t i = 0; i < m; ++i) at(i, j) /= norm;
    }
    // Q (m, n), transposed back to (rows, cols) when the draw was.
    std::vector<float> out(q.size());
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        const std::size_t dst = transposed ? static_cast<std::size_t>(j * m + i) : static_cast<std::size_t>(i * n + j);
        out[dst] = static_cast<float>(at(i, j));
      }
    // (rows, cols) is the shape without column_axis, then column_axis's extent: move it back.
    std::vector<std::int64_t> moved;
    for (int d = 0; d < shape.rank(); ++d)
      if (d != axis) moved.push_back(shape[d]);
    moved.push_back(cols);
    std::vector<int> perm;
    for (int d = 0; d < shape.rank() - 1; ++d) perm.push_back(d);
    perm.insert(perm.begin() + axis, shape.rank() - 1);
    return transpose(Tensor(out, Shape(moved)), perm) * scale;
  };
}

}  // namespace

Initializer orthogonal(float scale, int column_axis) {
  static const Initializer defaults = make_orthogonal(1.0f, -1);  // every recurrent cell's default
  if (scale == 1.0f && column_axis == -1) return defaults;
  return make_orthogonal(scale, column_axis);
}

}  // namespace weft::core::initializers
