// RMSProp, Adagrad, Lion and LAMB (optax.rmsprop, optax.adagrad, optax.lion, optax.lamb), each one
// pass per tensor in Optax's order of operations.
#include <cmath>

#include <fmt/format.h>

#include "internal.hpp"
#include "weft/optim/adagrad.hpp"
#include "weft/optim/lamb.hpp"
#include "weft/optim/lion.hpp"
#include "weft/optim/rmsprop.hpp"

namespace weft::optim {

constexpr const char* kRmsprop = "rmsprop";
constexpr const char* kAdagrad = "adagrad";
constexpr const char* kLion = "lion";
constexpr const char* kLamb = "lamb";

namespace {

using weft::detail::data;
using weft::detail::mutable_data;

/// 1 - b, rounded once (as the float32 constant Optax's 1 - decay gives).
float one_minus(float b) { return static_cast<float>(1.0 - static_cast<double>(b)); }

/// 1 - b^t in float32, as optax.bias_correction's decay**count.
float bias_correction(float b, std::int32_t t) { return 1.0f - std::pow(b, static_cast<float>(t)); }

}  // namespace

// ---------------------------------------------------------------- rmsprop

GradientTransformation rmsprop(LearningRate learning_rate, float decay, float eps, float initial_scale,
                               bool eps_in_sqrt, bool centered, std::optional<float> momentum, bool nesterov,
                               bool bias_correction_on) {
  detail::check_decay(decay, "decay", kRmsprop);
  detail::check_non_negative(eps, "eps", kRmsprop);
  detail::check_non_negative(initial_scale, "initial_scale", kRmsprop);
  if (momentum) detail::check_non_negative(*momentum, "momentum", kRmsprop);
  const bool has_trace = momentum.has_value();
  const float m = momentum.value_or(0.0f);
  GradientTransformation out;
  out.init = [initial_scale, centered, has_trace](const Variables& params) {
    Variables state = detail::count_state(0).merge(detail::full_like(params, initial_scale).prefixed("nu"));
    if (centered) state = state.merge(detail::zeros_like(params).prefixed("mu"));
    if (has_trace) state = state.merge(detail::zeros_like(params).prefixed("trace"));
    return state;
  };
  out.update = [=, learning_rate = std::move(learning_rate)](const Variables& grads, const Variables& state,
                                                             const Variables&) {
    const std::int32_t count = detail::read_count(state, kRmsprop);
    const std::int32_t t = detail::next_count(count);
    const float scale = -learning_rate.at(count, kRmsprop);
    const float bc = bias_correction_on ? bias_correction(decay, t) : 1.0f;
    const float omd = one_minus(decay);
    const Variables nu = detail::state_part(state, "nu", grads, kRmsprop);
    const Variables mu = centered ? detail::state_part(state, "mu", grads, kRmsprop) : Variables();
    const Variables trace = has_trace ? detail::state_part(state, "trace", grads, kRmsprop) : Variables();
    std::vector<Tensor> nus, mus, traces;
    Variables updates = tree_map(
        [&](std::string_view path, const Tensor& g) {
          const Tensor& v = nu.at(path);
          detail::check_leaf(path, g, &v, "the state's nu", kRmsprop);
          const Tensor* mp = centered ? &mu.at(path) : nullptr;
          const Tensor* tp = has_trace ? &trace.at(path) : nullptr;
          if (mp != nullptr) detail::check_leaf(path, g, mp, "the state's mu", kRmsprop);
          if (tp != nullptr) detail::check_leaf(path, g, tp, "the state's trace", kRmsprop);
          Tensor v2 = detail::new_like(g), u = detail::new_like(g);
          Tensor m2 = centered ? detail::new_like(g) : Tensor();
          Tensor t2 = has_trace ? detail::new_like(g) : Tensor();
          const float* pg = data<float>(g);
          const float* pv = data<float>(v);
          const float* pm = mp != nullptr ? data<float>(*mp) : nullptr;
          const float* pt = tp != nullptr ? data<float>(*tp) : nullptr;
          float* pv2 = mutable_data<float>(v2);
          float* pm2 = centered ? mutable_data<float>(m2) : nullptr;
          float* pt2 = has_trace ? mutable_data<float>(t2) : nullptr;
          float* pu = mutable_data<float>(u);
          detail::for_each_index(g.size(), [&](std::int64_t i) {
            const float gi = pg[i];
            const float vi = omd * (gi * gi) + decay * pv[i];
            pv2[i] = vi;
            float s = bias_correction_on ? vi / bc : vi;
            if (centered) {
              const float mi = omd * gi + decay * pm[i];
              pm2[i] = mi;
              const float mh = bias_correction_on ? mi / bc : mi;
              s = s - mh * mh;
            }
            const float scaling = eps_in_sqrt ? 1.0f / std::sqrt(s + eps) : 1.0f / (std::sqrt(s) + eps);
            const float x = scale * (scaling * gi);
            if (has_trace) {
              const float ti = x + m * pt[i];
              pt2[i] = ti;
              pu[i] = nesterov ? x + m * ti : ti;
            } else {
              pu[i] = x;
            }
          });
          nus.push_back(std::move(v2));
          if (centered) mus.push_back(std::move(m2));
          if (has_trace) traces.push_back(std::move(t2));
          return u;
        },
        grads);
    Variables next = detail::count_state(t).merge(detail::rebuild(grads, nus).prefixed("nu"));
    if (centered) next = next.merge(detail::rebuild(grads, mus).prefixed("mu"));
    if (has_trace) next = next.merge(detail::rebuild(grads, traces).prefixed("trace"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("rmsprop", std::move(out));
}

// ---------------------------------------------------------------- adagrad

GradientTransformation adagrad(LearningRate learning_rate, float initial_accumulator_value, float eps) {
  detail::check_non_negative(initial_accumulator_value, "initial_accumulator_value", kAdagrad);
  detail::check_non_negative(eps, "eps", kAdagrad);
  GradientTransformation out;
  out.init = [initial_accumulator_value](const Variables& params) {
    return detail::count_state(0).merge(detail::full_like(params, initial_accumulator_value).prefixed("sum_of_squares"));
  };
  out.update = [eps, learning_rate = std::move(learning_rate)](const Variables& grads, const Variables& state,
                                                               const Variables&) {
    const std::int32_t count = detail::read_count(state, kAdagrad);
    const float scale = -learning_rate.at(count, kAdagrad);
    const Variables sos = detail::state_part(state, "sum_of_squares", grads, kAdagrad);
    std::vector<Tensor> sums;
    Variables updates = tree_map(
        [&](std::string_view path, const Tensor& g, const Tensor& a) {
          detail::check_leaf(path, g, &a, "the state's sum_of_squares", kAdagrad);
          Tensor a2 = detail::new_like(g), u = detail::new_like(g);
          const float* pg = data<float>(g);
          const float* pa = data<float>(a);
          float* pa2 = mutable_data<float>(a2);
          float* pu = mutable_data<float>(u);
          detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
            for (std::int64_t i = b; i < e; ++i) {
              const float ai = pg[i] * pg[i] + pa[i];
              pa2[i] = ai;
              const float inv = ai > 0.0f ? 1.0f / std::sqrt(ai + eps) : 0.0f;
              pu[i] = scale * (inv * pg[i]);
            }
          });
          sums.push_back(std::move(a2));
          return u;
        },
        grads, sos);
    Variables next = detail::count_state(detail::next_count(count))
                         .merge(detail::rebuild(grads, sums).prefixed("sum_of_squares"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("adagrad", std::move(out));
}

// ---------------------------------------------------------------- lion

GradientTransformation lion(LearningRate learning_rate, float b1, float b2, float weight_decay, Mask mask) {
  detail::check_decay(b1, "b1", kLion);
  detail::check_decay(b2, "b2", kLion);
  detail::check_non_negative(weight_decay, "weight_decay", kLion);
  GradientTransformation out;
  out.init = [](const Variables& params) {
    return detail::count_state(0).merge(detail::zeros_like(params).prefixed("mu"));
  };
  out.update = [=, learning_rate = std::move(learning_rate), mask = std::move(mask)](
                   const Variables& grads, const Variables& state, const Variables& params) {
    const std::int32_t count = detail::read_count(state, kLion);
    const float scale = -learning_rate.at(count, kLion);
    const Variables mu = detail::state_part(state, "mu", grads, kLion);
    detail::require_params(grads, params, "for the weight decay", kLion);
    detail::check_structure(grads, "the gradients", params, "the params", kLion);
    const float omb1 = one_minus(b1), omb2 = one_minus(b2);
    std::vector<Tensor> mus;
    Variables updates = tree_map(
        [&](std::string_view path, const Tensor& g, const Tensor& m, const Tensor& p) {
          detail::check_leaf(path, g, &m, "the state's mu", kLion);
          detail::check_leaf(path, g, &p, "the param", kLion);
          const float wd = mask.applies_to(path, kLion) ? weight_decay : 0.0f;
          Tensor m2 = detail::new_like(g), u = detail::new_like(g);
          const float* pg = data<float>(g);
          const float* pm = data<float>(m);
          const float* pp = data<float>(p);
          float* pm2 = mutable_data<float>(m2);
          float* pu = mutable_data<float>(u);
          detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i) {
              const float c = omb1 * pg[i] + b1 * pm[i];
              // jnp.sign: -1, 0 or 1 (NaN stays NaN).
              const float sign = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : c);
              pu[i] = scale * (wd != 0.0f ? sign + wd * pp[i] : sign);
              pm2[i] = omb2 * pg[i] + b2 * pm[i];
            }
          });
          mus.push_back(std::move(m2));
          return u;
        },
        grads, mu, params);
    Variables next = detail::count_state(detail::next_count(count)).merge(detail::rebuild(grads, mus).prefixed("mu"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("lion", std::move(out));
}

// ---------------------------------------------------------------- lamb

GradientTransformation lamb(LearningRate learning_rate, float b1, float b2, float eps, float eps_root,
                            float weight_decay, Mask mask) {
  detail::check_decay(b1, "b1", kLamb);
  detail::check_decay(b2, "b2", kLamb);
  detail::check_non_negative(eps, "eps", kLamb);
  detail::check_non_negative(eps_root, "eps_root", kLamb);
  detail::check_non_negative(weight_decay, "weight_decay", kLamb);
  GradientTransformation out;
  out.init = [](const Variables& params) {
    const Variables zeros = detail::zeros_like(params);
    return detail::count_state(0).merge(zeros.prefixed("mu")).merge(zeros.prefixed("nu"));
  };
  out.update = [=, learning_rate = std::move(learning_rate), mask = std::move(mask)](
                   const Variables& grads, const Variables& state, const Variables& params) {
    const std::int32_t count = detail::read_count(state, kLamb);
    const std::int32_t t = detail::next_count(count);
    const float scale = -learning_rate.at(count, kLamb);
    const Variables mu = detail::state_part(state, "mu", grads, kLamb);
    const Variables nu = detail::state_part(state, "nu", grads, kLamb);
    detail::require_params(grads, params, "for the trust ratio", kLamb);
    detail::check_structure(grads, "the gradients", params, "the params", kLamb);
    const float omb1 = one_minus(b1), omb2 = one_minus(b2);
    const float bc1 = bias_correction(b1, t), bc2 = bias_correction(b2, t);
    std::vector<Tensor> mus, nus;
    Variables updates = tree_map(
        [&](std::string_view path, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& p) {
          detail::check_leaf(path, g, &m, "the state's mu", kLamb);
          detail::check_leaf(path, g, &v, "the state's nu", kLamb);
          detail::check_leaf(path, g, &p, "the param", kLamb);
          const float wd = mask.applies_to(path, kLamb) ? weight_decay : 0.0f;
          Tensor m2 = detail::new_like(g), v2 = detail::new_like(g), d = detail::new_like(g);
          const float* pg = data<float>(g);
          const float* pm = data<float>(m);
          const float* pv = data<float>(v);
          const float* pp = data<float>(p);
          float* pm2 = mutable_data<float>(m2);
          float* pv2 = mutable_data<float>(v2);
          float* pd = mutable_data<float>(d);
          detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
            for (std::int64_t i = b; i < e; ++i) {
              const float gi = pg[i];
              const float mi = omb1 * gi + b1 * pm[i];
              const float vi = omb2 * (gi * gi) + b2 * pv[i];
              pm2[i] = mi;
              pv2[i] = vi;
              float di = (mi / bc1) / (std::sqrt(vi / bc2 + eps_root) + eps);
              if (wd != 0.0f) di = di + wd * pp[i];
              pd[i] = di;
            }
          });
          // optax.scale_by_trust_ratio with min_norm 0, trust_coefficient 1, eps 0.
          const double param_norm = std::sqrt(detail::sum_squares(p));
          const double update_norm = std::sqrt(detail::sum_squares(d));
          const float ratio = param_norm == 0.0 || update_norm == 0.0
                                  ? 1.0f
                                  : static_cast<float>(param_norm) / static_cast<float>(update_norm);
          Tensor u = detail::new_like(g);
          float* pu = mutable_data<float>(u);
          const float* pd2 = data<float>(d);
          detail::for_chunks(g.size(), [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
            for (std::int64_t i = b; i < e; ++i) pu[i] = scale * (pd2[i] * ratio);
          });
          mus.push_back(std::move(m2));
          nus.push_back(std::move(v2));
          return u;
        },
        grads, mu, nu, params);
    Variables next = detail::count_state(t)
                         .merge(detail::rebuild(grads, mus).prefixed("mu"))
                         .merge(detail::rebuild(grads, nus).prefixed("nu"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("lamb", std::move(out));
}

}  // namespace weft::optim
