// Adam and AdamW (optax.adam, optax.adamw) with one fused pass per tensor: read g, mu, nu (and the
// param for AdamW), write mu', nu' and the update. PyTorch's Adam makes about eight elementwise passes.
#include "weft/optim/adam.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "../jit/trace.hpp"
#include "internal.hpp"

namespace weft::optim {

namespace {

using weft::detail::data;
using weft::detail::mutable_data;

struct AdamConfig {
  LearningRate learning_rate;
  float b1, b2, eps, weight_decay;
  bool decoupled;  // AdamW
  Mask mask;       // the leaves AdamW decays
  [[nodiscard]] const char* op() const noexcept { return decoupled ? "adamw" : "adam"; }
};

/// This step's constants: the reciprocals of the bias corrections 1 - b^t of optax.scale_by_adam, and
/// -learning_rate.
struct AdamStep {
  float b1, b2, one_minus_b1, one_minus_b2, inv_bc1, inv_bc2, eps, weight_decay, scale;
};

/// mu' = (1 - b1) g + b1 mu; nu' = (1 - b2) g^2 + b2 nu;
/// u = scale * ((mu' / bc1) / (sqrt(nu' / bc2) + eps) [+ weight_decay * p]), in Optax's order of operations
/// except that the bias corrections multiply by their reciprocals (within an ulp of Optax's divisions):
/// on tensors that fit in cache the divisions, not memory, bound the kernel (a third faster this way).
/// Each output may be the buffer of the input it replaces (m2 of m, v2 of v, u of g): a weft::jit
/// plan updates in place what the caller handed over; element i is read before it is written.
/// With `addend` (kApply), u[i] = addend[i] + update instead: the update applied to the params in
/// the same pass (a weft::jit plan fuses apply_updates so), bit for bit as apply_updates adds. For
/// that the update must be rounded before the add, as in two passes: g++ contracts a multiply and an
/// add into one fused multiply-add by default (even with -std=c++20), so the update goes through a
/// block in cache, a second loop adding it (a store and a load between them are not contracted).
template <bool kDecay, bool kApply = false>
void adam_kernel(const AdamStep& c, const float* g, const float* m, const float* v, const float* p, float* m2,
                 float* v2, float* u, std::int64_t n, const float* addend = nullptr) {
  constexpr std::int64_t kBlock = 512;
  // The constants by value: behind a reference every store could change them, and the compiler
  // would reload them in the loop.
  detail::for_chunks(n, [=](std::int64_t b, std::int64_t e) {
    const AdamStep k = c;
    for (std::int64_t b0 = b; b0 < e; b0 += kBlock) {
      const std::int64_t e0 = std::min(e, b0 + kBlock);
      alignas(64) float update[kBlock];
      float* out = kApply ? update : u + b0;  // the update of element i at i - b0
#pragma omp simd
      for (std::int64_t i = b0; i < e0; ++i) {
        const float gi = g[i];
        const float mi = k.one_minus_b1 * gi + k.b1 * m[i];
        const float vi = k.one_minus_b2 * (gi * gi) + k.b2 * v[i];
        float d = (mi * k.inv_bc1) / (std::sqrt(vi * k.inv_bc2) + k.eps);
        if constexpr (kDecay) d += k.weight_decay * p[i];
        m2[i] = mi;
        v2[i] = vi;
        out[i - b0] = k.scale * d;
      }
      if constexpr (kApply) {
#pragma omp simd
        for (std::int64_t i = b0; i < e0; ++i) u[i] = addend[i] + update[i - b0];
      }
    }
  });
}

void check_rate(float b, const char* name, const char* op) {
  if (!(b >= 0.0f && b < 1.0f))
    throw ValueError(fmt::format("{}: {} is {:.6f}; it must be in [0, 1) (the decay rate of a moment estimate, e.g. "
                                 "0.9 or 0.999)",
                                 detail::where(op), name, b));
}

/// This step's constants from the step count before it.
AdamStep step_constants(const AdamConfig& config, std::int32_t count) {
  const std::int32_t t = detail::next_count(count);
  AdamStep c{};
  c.b1 = config.b1;
  c.b2 = config.b2;
  c.one_minus_b1 = static_cast<float>(1.0 - static_cast<double>(config.b1));
  c.one_minus_b2 = static_cast<float>(1.0 - static_cast<double>(config.b2));
  c.inv_bc1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(config.b1), t)));
  c.inv_bc2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(config.b2), t)));
  c.eps = config.eps;
  c.weight_decay = config.weight_decay;
  c.scale = -config.learning_rate.at(count, config.op());
  return c;
}

/// (mu', nu', update) of one leaf: one op, which a weft::jit plan runs as one kernel that reads the
/// step count itself (so the schedule and the bias corrections follow each call's count) and may
/// update mu and nu in place. `p` is empty without weight decay.
std::array<Tensor, 3> adam_leaf(const AdamConfig& config, bool decay, const Tensor& count, const Tensor& g,
                                const Tensor& m, const Tensor& v, const Tensor& p) {
  const auto run = [config, decay](const AdamStep& c, const float* pg, const float* pm, const float* pv,
                                   const float* pp, float* m2, float* v2, float* u, std::int64_t n) {
    if (decay)
      adam_kernel<true>(c, pg, pm, pv, pp, m2, v2, u, n);
    else
      adam_kernel<false>(c, pg, pm, pv, pp, m2, v2, u, n);
  };
  const auto lower = [config, decay, run](const Tensor&, const Tensor& g, const Tensor&, const Tensor&, const Tensor&,
                                   const std::array<Tensor, 3>&) -> weft::detail::JitKernel {
    weft::detail::JitKernel k{[config, run, n = g.size()](const void* const* in, void* const* out) {
      const AdamStep c = step_constants(config, detail::count_value_at(static_cast<const std::int32_t*>(in[0]),
                                                                      config.op()));
      run(c, static_cast<const float*>(in[1]), static_cast<const float*>(in[2]), static_cast<const float*>(in[3]),
          static_cast<const float*>(in[4]), static_cast<float*>(out[0]), static_cast<float*>(out[1]),
          static_cast<float*>(out[2]), n);
    }};
    k.in_place = {{0, 2}, {1, 3}, {2, 1}};  // mu' over mu, nu' over nu, the update over g
    // params + update in the same pass, the params (input 5) as the addend: no update array.
    k.fuse_add = [config, decay, n = g.size()](int output) -> weft::detail::JitKernel {
      if (output != 2) return {};
      weft::detail::JitKernel fused{[config, decay, n](const void* const* in, void* const* out) {
        const AdamStep c = step_constants(config, detail::count_value_at(static_cast<const std::int32_t*>(in[0]),
                                                                        config.op()));
        const auto* g = static_cast<const float*>(in[1]);
        const auto* m = static_cast<const float*>(in[2]);
        const auto* v = static_cast<const float*>(in[3]);
        const auto* p = static_cast<const float*>(in[4]);
        const auto* params = static_cast<const float*>(in[5]);
        auto* m2 = static_cast<float*>(out[0]);
        auto* v2 = static_cast<float*>(out[1]);
        auto* p2 = static_cast<float*>(out[2]);
        if (decay)
          adam_kernel<true, true>(c, g, m, v, p, m2, v2, p2, n, params);
        else
          adam_kernel<false, true>(c, g, m, v, p, m2, v2, p2, n, params);
      }};
      fused.in_place = {{0, 2}, {1, 3}, {2, 5}};  // and the new params over the old
      return fused;
    };
    return k;
  };
  return weft::detail::traced_lowered(
      config.op(),
      [config, run](const Tensor& count, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& p) {
        const AdamStep c = step_constants(config, detail::count_value(count, config.op()));
        std::array<Tensor, 3> out{weft::detail::empty(g.shape(), DType::float32),
                                  weft::detail::empty(g.shape(), DType::float32),
                                  weft::detail::empty(g.shape(), DType::float32)};
        run(c, data<float>(g), data<float>(m), data<float>(v), p.defined() ? data<float>(p) : nullptr,
            mutable_data<float>(out[0]), mutable_data<float>(out[1]), mutable_data<float>(out[2]), g.size());
        return out;
      },
      lower, count, g, m, v, p);
}

GradientTransformation make_adam(AdamConfig config) {
  const char* op = config.op();
  check_rate(config.b1, "b1", op);
  check_rate(config.b2, "b2", op);
  if (!std::isfinite(config.eps) || config.eps < 0.0f)
    throw ValueError(fmt::format("{}: eps is {:.6f}; it must be a small non-negative number such as 1e-8",
                                 detail::where(op), config.eps));
  if (!std::isfinite(config.weight_decay) || config.weight_decay < 0.0f)
    throw ValueError(fmt::format("{}: weight_decay is {:.6f}; it must be 0 or positive (e.g. 1e-4); a negative decay "
                                 "would grow the weights",
                                 detail::where(op), config.weight_decay));
  GradientTransformation out;
  out.init = [](const Variables& params) {
    const Variables moments = tree_map([](const Tensor& p) { return zeros(p.shape()); }, params);
    return detail::count_state(0).merge(moments.prefixed("mu")).merge(moments.prefixed("nu"));
  };
  out.update = [config = std::move(config)](const Variables& grads, const Variables& state, const Variables& params) {
    const char* op = config.op();
    const Tensor& count = detail::count_tensor(state, op);
    const Variables mu = detail::state_part(state, "mu", grads, op);
    const Variables nu = detail::state_part(state, "nu", grads, op);
    if (config.decoupled) {
      if (params.empty() && !grads.empty())
        throw ValueError(fmt::format("{}: update needs the params for the weight decay; "
                                     "call update(grads, state, params)", detail::where(op)));
      detail::check_structure(grads, "the gradients", params, "the params", op);
    }
    std::vector<Tensor> mus, nus;
    mus.reserve(grads.size());
    nus.reserve(grads.size());
    const auto step = [&](std::string_view path, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor* p) {
      detail::check_leaf(path, g, &m, "the state's mu", op);
      detail::check_leaf(path, g, &v, "the state's nu", op);
      if (p != nullptr) detail::check_leaf(path, g, p, "the param", op);
      const bool decay = p != nullptr && config.mask.applies_to(path, op);
      auto [m2, v2, u] = adam_leaf(config, decay, count, g, m, v, decay ? *p : Tensor());
      mus.push_back(std::move(m2));
      nus.push_back(std::move(v2));
      return u;
    };
    Variables updates =
        config.decoupled
            ? tree_map([&](std::string_view path, const Tensor& g, const Tensor& m, const Tensor& v,
                           const Tensor& p) { return step(path, g, m, v, &p); },
                       grads, mu, nu, params)
            : tree_map([&](std::string_view path, const Tensor& g, const Tensor& m, const Tensor& v) {
                return step(path, g, m, v, nullptr);
              },
                       grads, mu, nu);
    Variables next = detail::next_count_state(count, op)
                         .merge(detail::rebuild(grads, mus).prefixed("mu"))
                         .merge(detail::rebuild(grads, nus).prefixed("nu"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return out;
}

}  // namespace

GradientTransformation adam(LearningRate learning_rate, float b1, float b2, float eps) {
  return make_adam({std::move(learning_rate), b1, b2, eps, 0.0f, false, {}});
}

GradientTransformation adamw(LearningRate learning_rate, float b1, float b2, float eps, float weight_decay, Mask mask) {
  return make_adam({std::move(learning_rate), b1, b2, eps, weight_decay, true, std::move(mask)});
}

}  // namespace weft::optim
