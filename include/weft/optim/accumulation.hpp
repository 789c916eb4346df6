#pragma once
// Moving averages and gradient accumulation: optax.ema and optax.MultiSteps.
//
//   // Four micro-batches per Adam step (the mean of their gradients):
//   const optim::MultiSteps accumulate(optim::adam(1e-3f), 4);
//   auto tx = accumulate.gradient_transformation();
//   ... updates are zeros on three calls in four; accumulate.has_updated(state) after the fourth.
//
//   // An exponential moving average of the parameters (for evaluation), updated after each step:
//   const auto average = optim::ema(0.999f);
//   Variables ema_state = average.init(params);
//   ... params = apply_updates(params, updates);
//       auto [ema_params, next] = average.update(params, ema_state, {});
//       ema_state = next;
#include <cstdint>
#include <functional>

#include "weft/optim/transform.hpp"

namespace weft::optim {

/// The exponential moving average of the updates (optax.ema):
///   ema' = (1 - decay) * u + decay * ema  (ema starts at zero),
/// and the updates become ema' / (1 - decay^t) when `debias` (t the count after this update), ema'
/// otherwise. Given the params as "updates" after each step, it averages the params. State:
/// "count/count" and "ema/params/..." (not debiased), Optax's EmaState(count, ema). decay outside
/// [0, 1] is a weft::ValueError.
[[nodiscard]] GradientTransformation ema(float decay, bool debias = true);

/// Gradient accumulation over k micro-batches (optax.MultiSteps): each update adds the gradients to
/// an accumulator (their running mean when use_grad_mean, as Optax's Welford update
/// acc + (g - acc) / (mini_step + 1); else their sum) and returns zeros, except every k-th, which
/// passes the accumulator to the inner optimizer, returns its updates and resets the accumulator.
/// k may change with the number of inner steps made (every_k_schedule(gradient_step)).
/// State: "mini_step/mini_step" (int32: micro-batches accumulated since the last inner step),
/// "gradient_step/gradient_step" (int32: inner steps made), "acc_grads/params/..." and the inner
/// state under "inner_opt_state/", Optax's MultiStepsState. Unlike Optax, the inner update runs only
/// on the k-th call (the same results, without the discarded work).
class MultiSteps {
 public:
  /// k micro-batches per inner step; k < 1 is a weft::ValueError.
  MultiSteps(GradientTransformation opt, std::int64_t every_k, bool use_grad_mean = true);
  /// every_k_schedule(gradient_step) micro-batches per inner step; a value below 1 is a weft::ValueError
  /// when the update meets it.
  MultiSteps(GradientTransformation opt, std::function<std::int64_t(std::int64_t gradient_step)> every_k_schedule,
             bool use_grad_mean = true);

  [[nodiscard]] Variables init(const Variables& params) const;
  [[nodiscard]] std::pair<Variables, Variables> update(const Variables& grads, const Variables& state,
                                                       const Variables& params) const;
  /// True when the update that returned `state` made an inner step (optax.MultiSteps.has_updated).
  [[nodiscard]] bool has_updated(const Variables& state) const;
  /// This accumulation as a GradientTransformation (to chain, or to give to a TrainState).
  [[nodiscard]] GradientTransformation gradient_transformation() const;
  [[nodiscard]] const GradientTransformation& inner_opt() const noexcept { return opt_; }

 private:
  /// One update, as weft::jit records it as a single op (it branches on the step counts).
  [[nodiscard]] std::pair<Variables, Variables> step(const Variables& grads, const Variables& state,
                                                     const Variables& params) const;
  GradientTransformation opt_;
  std::function<std::int64_t(std::int64_t)> every_k_;
  bool use_grad_mean_;
};

}  // namespace weft::optim
