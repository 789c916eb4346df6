// Learning-rate schedules, with Optax's formulas (computed in double).
#include "weft/optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include <fmt/format.h>

#include "weft/error.hpp"

namespace weft::optim {

float LearningRate::checked_constant(double value) {
  if (!std::isfinite(value))
    throw ValueError(
        fmt::format("weft::optim: the learning rate is {:.6f}; give a finite number or a Schedule", value));
  return static_cast<float>(value);
}

void LearningRate::throw_empty_schedule() {
  throw ValueError("weft::optim: the learning-rate schedule is an empty std::function; give a number or a callable");
}

float LearningRate::at(std::int64_t step, const char* op) const {
  if (!schedule_) return value_;
  const float value = schedule_(step);
  if (!std::isfinite(value))
    throw ValueError(fmt::format("weft::optim::{}: the learning-rate schedule returned {} at step {}; a schedule must "
                                 "give a finite learning rate at every step",
                                 op, std::isnan(value) ? std::string("nan") : fmt::format("{:.6f}", value), step));
  return value;
}

Schedule constant_schedule(float value) {
  return [value](std::int64_t) { return value; };
}

Schedule polynomial_schedule(float init_value, float end_value, float power, std::int64_t transition_steps,
                             std::int64_t transition_begin) {
  if (transition_steps <= 0) return constant_schedule(init_value);  // as Optax: no transition at all
  transition_begin = std::max<std::int64_t>(transition_begin, 0);
  return [=](std::int64_t step) {
    // step - transition_begin would overflow for a step near INT64_MIN; both are >= 0 past the clamp.
    const std::int64_t since_begin = step < transition_begin ? 0 : step - transition_begin;
    const auto t = static_cast<double>(std::min(since_begin, transition_steps));
    const double frac = 1.0 - t / static_cast<double>(transition_steps);
    return static_cast<float>((static_cast<double>(init_value) - end_value) * std::pow(frac, static_cast<double>(power)) +
                              end_value);
  };
}

Schedule linear_schedule(float init_value, float end_value, std::int64_t transition_steps,
                         std::int64_t transition_begin) {
  return polynomial_schedule(init_value, end_value, 1.0f, transition_steps, transition_begin);
}

Schedule cosine_decay_schedule(float init_value, std::int64_t decay_steps, float alpha, float exponent) {
  if (decay_steps <= 0)
    throw ValueError(fmt::format("weft::optim::cosine_decay_schedule: decay_steps is {}; it must be positive (the "
                                 "number of steps over which the value decays)",
                                 decay_steps));
  return [=](std::int64_t step) {
    const double t = static_cast<double>(std::min(step, decay_steps));
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * t / static_cast<double>(decay_steps)));
    const double decayed = (1.0 - alpha) * std::pow(cosine, static_cast<double>(exponent)) + alpha;
    return static_cast<float>(init_value * decayed);
  };
}

Schedule join_schedules(std::vector<Schedule> schedules, std::vector<std::int64_t> boundaries) {
  if (schedules.empty() || boundaries.size() + 1 != schedules.size())
    throw ValueError(fmt::format("weft::optim::join_schedules: {} schedules and {} boundaries; give one boundary fewer "
                                 "than schedules",
                                 schedules.size(), boundaries.size()));
  if (!std::is_sorted(boundaries.begin(), boundaries.end()))
    throw ValueError("weft::optim::join_schedules: the boundaries are not in increasing order");
  for (std::size_t i = 0; i < schedules.size(); ++i)
    if (!schedules[i])
      throw ValueError(fmt::format("weft::optim::join_schedules: schedule {} is empty", i));
  return [schedules = std::move(schedules), boundaries = std::move(boundaries)](std::int64_t step) {
    // The last boundary at or below step picks the schedule, which starts counting there.
    const auto i = static_cast<std::size_t>(std::upper_bound(boundaries.begin(), boundaries.end(), step) -
                                            boundaries.begin());
    // step >= boundaries[i - 1] here; the difference is taken in uint64 so that it cannot overflow,
    // and saturates at INT64_MAX (a boundary far below zero), where every schedule is constant.
    if (i == 0) return schedules[0](step);
    const std::uint64_t since = static_cast<std::uint64_t>(step) - static_cast<std::uint64_t>(boundaries[i - 1]);
    return schedules[i](static_cast<std::int64_t>(
        std::min<std::uint64_t>(since, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))));
  };
}

Schedule warmup_cosine_decay_schedule(float init_value, float peak_value, std::int64_t warmup_steps,
                                      std::int64_t decay_steps, float end_value, float exponent) {
  if (warmup_steps < 0)
    throw ValueError(fmt::format("weft::optim::warmup_cosine_decay_schedule: warmup_steps is {}; it must be 0 or more",
                                 warmup_steps));
  if (decay_steps <= warmup_steps)
    throw ValueError(fmt::format("weft::optim::warmup_cosine_decay_schedule: decay_steps ({}) must exceed warmup_steps "
                                 "({}); decay_steps is the whole length of the schedule, warm-up included",
                                 decay_steps, warmup_steps));
  const float alpha = peak_value == 0.0f ? 0.0f : end_value / peak_value;
  return join_schedules({linear_schedule(init_value, peak_value, warmup_steps),
                         cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)},
                        {warmup_steps});
}

Schedule exponential_decay(float init_value, std::int64_t transition_steps, float decay_rate,
                           std::int64_t transition_begin, bool staircase, std::optional<float> end_value) {
  // As Optax: these give the constant init value (Optax logs it; weft says so here).
  if (transition_steps <= 0 || decay_rate == 0.0f) return constant_schedule(init_value);
  transition_begin = std::max<std::int64_t>(transition_begin, 0);
  return [=](std::int64_t step) {
    const double since = static_cast<double>(step) - static_cast<double>(transition_begin);
    double value = init_value;
    if (since > 0.0) {
      double p = since / static_cast<double>(transition_steps);
      if (staircase) p = std::floor(p);
      value = static_cast<double>(init_value) * std::pow(static_cast<double>(decay_rate), p);
    }
    if (end_value) value = decay_rate < 1.0f ? std::max(value, static_cast<double>(*end_value))
                                             : std::min(value, static_cast<double>(*end_value));
    return static_cast<float>(value);
  };
}

namespace {

void check_scales(const std::map<std::int64_t, float>& boundaries_and_scales, const char* op) {
  for (const auto& [boundary, scale] : boundaries_and_scales)
    if (!(scale >= 0.0f))
      throw ValueError(fmt::format("weft::optim::{}: the scale at boundary {} is {}; scales must be non-negative",
                                   op, boundary, scale));
}

}  // namespace

Schedule piecewise_constant_schedule(float init_value, std::map<std::int64_t, float> boundaries_and_scales) {
  check_scales(boundaries_and_scales, "piecewise_constant_schedule");
  return [init_value, b = std::move(boundaries_and_scales)](std::int64_t step) {
    double value = init_value;
    for (const auto& [boundary, scale] : b)  // in increasing order; each boundary reached scales the value
      if (step >= boundary) value *= scale;
    return static_cast<float>(value);
  };
}

Schedule piecewise_interpolate_schedule(std::string_view interpolate_type, float init_value,
                                        std::map<std::int64_t, float> boundaries_and_scales) {
  const bool cosine = interpolate_type == "cosine";
  if (!cosine && interpolate_type != "linear")
    throw ValueError(fmt::format("weft::optim::piecewise_interpolate_schedule: interpolate_type is \"{}\"; it must "
                                 "be \"linear\" or \"cosine\"",
                                 interpolate_type));
  check_scales(boundaries_and_scales, "piecewise_interpolate_schedule");
  // Optax's arrays: bounds = (0, b0, b1, ...), values = cumprod(init, s0, s1, ...).
  std::vector<std::int64_t> bounds{0};
  std::vector<double> values{init_value};
  for (const auto& [boundary, scale] : boundaries_and_scales) {
    bounds.push_back(boundary);
    values.push_back(values.back() * scale);
  }
  return [cosine, bounds = std::move(bounds), values = std::move(values)](std::int64_t step) {
    double out = 0.0;
    for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
      if (!(bounds[i] <= step && step < bounds[i + 1])) continue;
      const double size = static_cast<double>(std::max<std::int64_t>(bounds[i + 1] - bounds[i], 1));
      const double pct = (static_cast<double>(step) - static_cast<double>(bounds[i])) / size;
      const double start = values[i], end = values[i + 1];
      out += cosine ? end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0) : (end - start) * pct + start;
    }
    if (bounds.back() <= step) out += values.back();
    return static_cast<float>(out);
  };
}

Schedule warmup_exponential_decay_schedule(float init_value, float peak_value, std::int64_t warmup_steps,
                                           std::int64_t transition_steps, float decay_rate,
                                           std::int64_t transition_begin, bool staircase,
                                           std::optional<float> end_value) {
  return join_schedules({linear_schedule(init_value, peak_value, warmup_steps),
                         exponential_decay(peak_value, transition_steps, decay_rate, transition_begin, staircase,
                                           end_value)},
                        {warmup_steps});
}

Schedule sgdr_schedule(const std::vector<WarmupCosineDecayArgs>& cycles) {
  if (cycles.empty())
    throw ValueError("weft::optim::sgdr_schedule: no cycles; give one WarmupCosineDecayArgs per cycle");
  std::vector<Schedule> schedules;
  std::vector<std::int64_t> boundaries;
  std::int64_t step = 0;
  for (const WarmupCosineDecayArgs& c : cycles) {
    schedules.push_back(warmup_cosine_decay_schedule(c.init_value, c.peak_value, c.warmup_steps, c.decay_steps,
                                                     c.end_value, c.exponent));
    step += c.decay_steps;
    boundaries.push_back(step);
  }
  boundaries.pop_back();
  return join_schedules(std::move(schedules), std::move(boundaries));
}

}  // namespace weft::optim
