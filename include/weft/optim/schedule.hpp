#pragma once
// Learning-rate schedules (optax.schedules) and the learning-rate argument of the optimizers.
//
// A schedule maps the step count to a value. An optimizer evaluates its schedule at its count before
// incrementing it, as Optax does: the first update uses schedule(0), the second schedule(1).
// Schedules compute in double and return float (Optax computes in float32).
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft::optim {

/// A value as a function of the number of updates made so far.
using Schedule = std::function<float(std::int64_t step)>;

/// An optimizer's learning rate: a number, or a Schedule of the step count.
class LearningRate {
 public:
  /// A constant learning rate; NaN or infinity is a weft::ValueError.
  template <class T>
    requires(std::is_arithmetic_v<T> && !std::same_as<T, bool>)
  LearningRate(T value) : value_(checked_constant(static_cast<double>(value))) {}  // NOLINT: a number is a rate
  /// A schedule: any callable float(std::int64_t step), e.g. optim::cosine_decay_schedule(...).
  template <class F>
    requires(!std::is_arithmetic_v<std::remove_cvref_t<F>> && std::invocable<const std::remove_cvref_t<F>&, std::int64_t> &&
             std::convertible_to<std::invoke_result_t<const std::remove_cvref_t<F>&, std::int64_t>, float>)
  LearningRate(F&& schedule) : schedule_(std::forward<F>(schedule)) {  // NOLINT: a schedule is a rate
    if (!schedule_) throw_empty_schedule();
  }

  /// The learning rate at `step`. A schedule that gives NaN or infinity is a weft::ValueError naming
  /// the optimizer `op` and the step.
  [[nodiscard]] float at(std::int64_t step, const char* op) const;
  [[nodiscard]] bool is_constant() const noexcept { return !schedule_; }

 private:
  static float checked_constant(double value);
  [[noreturn]] static void throw_empty_schedule();
  float value_ = 0.0f;
  Schedule schedule_;
};

/// value at every step.
[[nodiscard]] Schedule constant_schedule(float value);

/// (init - end) * (1 - t / transition_steps)^power + end with t = clamp(step - transition_begin, 0,
/// transition_steps): init_value until transition_begin, end_value from transition_begin +
/// transition_steps on. transition_steps <= 0 gives the constant init_value and a negative
/// transition_begin counts as 0, as Optax.
[[nodiscard]] Schedule polynomial_schedule(float init_value, float end_value, float power, std::int64_t transition_steps,
                                           std::int64_t transition_begin = 0);

/// polynomial_schedule with power 1: a linear warm-up (or decay) from init_value to end_value.
[[nodiscard]] Schedule linear_schedule(float init_value, float end_value, std::int64_t transition_steps,
                                       std::int64_t transition_begin = 0);

/// init_value * ((1 - alpha) * (0.5 * (1 + cos(pi * t / decay_steps)))^exponent + alpha) with
/// t = min(step, decay_steps): from init_value down to alpha * init_value. decay_steps <= 0 is a
/// weft::ValueError.
[[nodiscard]] Schedule cosine_decay_schedule(float init_value, std::int64_t decay_steps, float alpha = 0.0f,
                                             float exponent = 1.0f);

/// schedules[0] before boundaries[0], then schedules[1](step - boundaries[0]) before boundaries[1], and
/// so on (optax.join_schedules). Needs one boundary fewer than schedules, in increasing order.
[[nodiscard]] Schedule join_schedules(std::vector<Schedule> schedules, std::vector<std::int64_t> boundaries);

/// A linear warm-up from init_value to peak_value over warmup_steps, then a cosine decay to end_value
/// at decay_steps; decay_steps counts the warm-up too (it must exceed warmup_steps), as Optax.
[[nodiscard]] Schedule warmup_cosine_decay_schedule(float init_value, float peak_value, std::int64_t warmup_steps,
                                                    std::int64_t decay_steps, float end_value = 0.0f,
                                                    float exponent = 1.0f);

/// optax.exponential_decay: init_value until transition_begin, then
///   init_value * decay_rate^((step - transition_begin) / transition_steps),
/// with the exponent rounded down when `staircase` (a drop every transition_steps). end_value bounds
/// the decay: a lower bound when decay_rate < 1, an upper bound otherwise. As Optax,
/// transition_steps <= 0 or decay_rate == 0 gives the constant init_value and a negative
/// transition_begin counts as 0.
[[nodiscard]] Schedule exponential_decay(float init_value, std::int64_t transition_steps, float decay_rate,
                                         std::int64_t transition_begin = 0, bool staircase = false,
                                         std::optional<float> end_value = std::nullopt);

/// optax.piecewise_constant_schedule: init_value times the product of the scales of every boundary
/// at or below the step ({100: 0.1, 200: 0.01}: 1 until 99, 0.1 from 100, 0.001 from 200). A
/// negative scale is a weft::ValueError.
[[nodiscard]] Schedule piecewise_constant_schedule(float init_value,
                                                   std::map<std::int64_t, float> boundaries_and_scales = {});

/// optax.piecewise_interpolate_schedule: the values init_value, init_value * s0, init_value * s0 * s1,
/// ... at step 0 and at the boundaries, joined by straight lines (interpolate_type "linear") or half
/// cosines ("cosine"); the last value from the last boundary on ({4: 0.1, 8: 0.01}, linear: 1 at 0,
/// 0.55 at 2, 0.1 at 4, 0.0505 at 6, 0.001 from 8). Another interpolate_type or a negative scale is a
/// weft::ValueError.
[[nodiscard]] Schedule piecewise_interpolate_schedule(std::string_view interpolate_type, float init_value,
                                                      std::map<std::int64_t, float> boundaries_and_scales = {});

/// optax.warmup_exponential_decay_schedule: a linear warm-up from init_value to peak_value over
/// warmup_steps, then exponential_decay(peak_value, transition_steps, decay_rate, transition_begin,
/// staircase, end_value) counted from the end of the warm-up.
[[nodiscard]] Schedule warmup_exponential_decay_schedule(float init_value, float peak_value, std::int64_t warmup_steps,
                                                         std::int64_t transition_steps, float decay_rate,
                                                         std::int64_t transition_begin = 0, bool staircase = false,
                                                         std::optional<float> end_value = std::nullopt);

/// The arguments of one warmup_cosine_decay_schedule, for sgdr_schedule (Optax's dicts of kwargs).
struct WarmupCosineDecayArgs {
  float init_value = 0.0f;
  float peak_value = 0.0f;
  std::int64_t warmup_steps = 0;
  std::int64_t decay_steps = 0;
  float end_value = 0.0f;
  float exponent = 1.0f;
};

/// optax.sgdr_schedule, SGD with warm restarts (Loshchilov and Hutter): the cycles'
/// warmup_cosine_decay_schedules one after the other, each restarting its count where the previous
/// one's decay_steps end (join_schedules with boundaries at the running sums of decay_steps). No
/// cycle is a weft::ValueError.
[[nodiscard]] Schedule sgdr_schedule(const std::vector<WarmupCosineDecayArgs>& cycles);

}  // namespace weft::optim
