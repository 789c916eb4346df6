// Adafactor (optax.adafactor), from the public ops: the factored moments reduce along the two
// largest axes of each leaf, which the ops' mean and broadcasting already do.
#include "weft/optim/adafactor.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "internal.hpp"
#include "weft/ops.hpp"

namespace weft::optim {

namespace {

constexpr const char* kOp = "adafactor";

/// optax's _factored_dims: (d1, d0), the second largest and the largest axis (numpy.argsort order: a
/// stable sort, so on a tie the later axis is d0), or none when the leaf is not factored.
std::optional<std::pair<int, int>> factored_dims(const Shape& shape, bool factored, std::int64_t min_dim) {
  if (!factored || shape.rank() < 2) return std::nullopt;
  std::vector<int> order(static_cast<std::size_t>(shape.rank()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return shape[a] < shape[b]; });
  const int d1 = order[order.size() - 2], d0 = order.back();
  if (shape[d1] < min_dim) return std::nullopt;
  return std::pair{d1, d0};
}

/// `shape` without `axis`.
Shape without_axis(const Shape& shape, int axis) {
  std::vector<std::int64_t> dims = shape.to_vector();
  dims.erase(dims.begin() + axis);
  return Shape(dims);
}

/// `shape` with `axis` set to 1 (where a reduced tensor broadcasts back).
Shape with_unit(const Shape& shape, int axis) { return shape.with(axis, 1); }

Tensor unit_zeros() { return zeros(Shape{1}); }

/// sqrt(mean(x^2)), in double.
float rms(const Tensor& x) {
  return x.size() == 0 ? 0.0f
                       : static_cast<float>(std::sqrt(detail::sum_squares(x) / static_cast<double>(x.size())));
}

}  // namespace

GradientTransformation adafactor(AdafactorOptions o) {
  if (!std::isfinite(o.decay_rate))
    throw ValueError(fmt::format("weft::optim::adafactor: decay_rate is {}; it must be finite (e.g. 0.8)", o.decay_rate));
  if (o.min_dim_size_to_factor < 0)
    throw ValueError(fmt::format("weft::optim::adafactor: min_dim_size_to_factor is {}; it must be 0 or more",
                                 o.min_dim_size_to_factor));
  if (o.momentum && !(*o.momentum >= 0.0f && *o.momentum <= 1.0f))
    throw ValueError(fmt::format("weft::optim::adafactor: momentum is {}; it must be in [0, 1]", *o.momentum));
  if (o.clipping_threshold && !(*o.clipping_threshold > 0.0f))
    throw ValueError(fmt::format("weft::optim::adafactor: clipping_threshold is {}; it must be positive",
                                 *o.clipping_threshold));
  detail::check_non_negative(o.eps, "eps", kOp);
  GradientTransformation out;
  out.init = [o](const Variables& params) {
    std::vector<Tensor> rows, cols, vs;
    for (const auto& leaf : params.leaves()) {
      const Tensor& p = leaf.second;
      if (const auto dims = factored_dims(p.shape(), o.factored, o.min_dim_size_to_factor)) {
        rows.push_back(zeros(without_axis(p.shape(), dims->second)));
        cols.push_back(zeros(without_axis(p.shape(), dims->first)));
        vs.push_back(unit_zeros());
      } else {
        rows.push_back(unit_zeros());
        cols.push_back(unit_zeros());
        vs.push_back(zeros(p.shape()));
      }
    }
    Variables state = detail::count_state(0)
                          .merge(detail::rebuild(params, rows).prefixed("v_row"))
                          .merge(detail::rebuild(params, cols).prefixed("v_col"))
                          .merge(detail::rebuild(params, vs).prefixed("v"));
    if (o.momentum) state = state.merge(detail::zeros_like(params).prefixed("ema"));
    return state;
  };
  out.update = [o](const Variables& grads, const Variables& state, const Variables& params) {
    const std::int32_t count = detail::read_count(state, kOp);
    detail::require_params(grads, params, "for the parameter scale and the weight decay", kOp);
    detail::check_structure(grads, "the gradients", params, "the params", kOp);
    const Variables v_row = detail::state_part(state, "v_row", grads, kOp);
    const Variables v_col = detail::state_part(state, "v_col", grads, kOp);
    const Variables v_full = detail::state_part(state, "v", grads, kOp);
    const Variables ema = o.momentum ? detail::state_part(state, "ema", grads, kOp) : Variables();
    // optax's _decay_rate_pow, in float32: 1 - (c - offset + 1)^(-decay_rate).
    const auto tc = static_cast<float>(static_cast<std::int64_t>(count) - o.decay_offset + 1);
    const float decay = 1.0f - std::pow(tc, -o.decay_rate);
    const float keep = 1.0f - decay;
    const std::optional<float> lr =
        o.learning_rate ? std::optional<float>(o.learning_rate->at(count, kOp)) : std::nullopt;
    const std::optional<float> wd =
        o.weight_decay_rate ? std::optional<float>(o.weight_decay_rate->at(count, kOp)) : std::nullopt;
    std::vector<Tensor> rows, cols, vs, emas;
    Variables updates = tree_map(
        [&](std::string_view path, const Tensor& g, const Tensor& p) {
          detail::check_leaf(path, g, &p, "the param", kOp);
          const Tensor& r = v_row.at(path);
          const Tensor& c = v_col.at(path);
          const Tensor& v = v_full.at(path);
          const Tensor g2 = square(g) + o.eps;
          Tensor u;
          if (const auto dims = factored_dims(g.shape(), o.factored, o.min_dim_size_to_factor)) {
            const auto [d1, d0] = *dims;
            if (r.shape() != without_axis(g.shape(), d0) || c.shape() != without_axis(g.shape(), d1))
              throw ShapeError(fmt::format("weft::optim::adafactor: at \"{}\" the state's v_row is {} and v_col {}, "
                                           "which do not fit the gradient {}; was the state made for other params?",
                                           path, r.shape().str(), c.shape().str(), g.shape().str()));
            Tensor r2 = decay * r + keep * mean(g2, d0);
            Tensor c2 = decay * c + keep * mean(g2, d1);
            const int reduced_d1 = d1 > d0 ? d1 - 1 : d1;
            const Tensor row_factor = rsqrt(r2 / mean(r2, reduced_d1, true));
            const Tensor col_factor = rsqrt(c2);
            u = g * reshape(row_factor, with_unit(g.shape(), d0)) * reshape(col_factor, with_unit(g.shape(), d1));
            rows.push_back(std::move(r2));
            cols.push_back(std::move(c2));
            vs.push_back(unit_zeros());
          } else {
            detail::check_leaf(path, g, &v, "the state's v", kOp);
            Tensor v2 = decay * v + keep * g2;
            u = g * rsqrt(v2);
            rows.push_back(unit_zeros());
            cols.push_back(unit_zeros());
            vs.push_back(std::move(v2));
          }
          if (o.clipping_threshold) u = u / std::max(1.0f, rms(u) / *o.clipping_threshold);
          if (lr) u = u * *lr;
          if (o.multiply_by_parameter_scale) u = u * std::max(rms(p), 1e-3f);
          if (o.momentum) {
            const Tensor& e = ema.at(path);
            detail::check_leaf(path, g, &e, "the state's ema", kOp);
            u = (1.0f - *o.momentum) * u + *o.momentum * e;
            emas.push_back(u);
          }
          if (wd && o.weight_decay_mask.applies_to(path, kOp)) u = u + *wd * p;
          return -u;
        },
        grads, params);
    Variables next = detail::count_state(detail::next_count(count))
                         .merge(detail::rebuild(grads, rows).prefixed("v_row"))
                         .merge(detail::rebuild(grads, cols).prefixed("v_col"))
                         .merge(detail::rebuild(grads, vs).prefixed("v"));
    if (o.momentum) next = next.merge(detail::rebuild(grads, emas).prefixed("ema"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("adafactor", std::move(out));
}

}  // namespace weft::optim
