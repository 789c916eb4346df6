// scale, scale_by_schedule and add_decayed_weights (optax.scale, optax.scale_by_schedule,
// optax.add_decayed_weights).
#include "weft/optim/transforms.hpp"

#include <cmath>

#include <fmt/format.h>

#include "internal.hpp"

namespace weft::optim {

constexpr const char* kScaleBySchedule = "scale_by_schedule";
constexpr const char* kAddDecayedWeights = "add_decayed_weights";

namespace {

/// u = s * g.
Tensor times(const Tensor& g, float s) {
  return detail::map_leaf(g, [s](float x) { return s * x; });
}

Variables scaled_tree(const Variables& grads, float s, const char* op) {
  return tree_map(
      [s, op](std::string_view path, const Tensor& g) {
        detail::check_leaf(path, g, nullptr, "", op);
        return times(g, s);
      },
      grads);
}

}  // namespace

GradientTransformation scale(float step_size) {
  if (!std::isfinite(step_size))
    throw ValueError(fmt::format("weft::optim::scale: step_size is {}; it must be finite", step_size));
  GradientTransformation out;
  out.init = [](const Variables&) { return Variables(); };
  out.update = [step_size](const Variables& grads, const Variables& state, const Variables&) {
    return std::pair{scaled_tree(grads, step_size, "scale"), state};
  };
  return detail::traced_transformation("scale", std::move(out));
}

GradientTransformation scale_by_schedule(Schedule step_size_fn) {
  if (!step_size_fn) throw ValueError("weft::optim::scale_by_schedule: the schedule is an empty std::function");
  GradientTransformation out;
  out.init = [](const Variables&) { return detail::count_state(0); };
  out.update = [fn = std::move(step_size_fn)](const Variables& grads, const Variables& state, const Variables&) {
    const std::int32_t count = detail::read_count(state, kScaleBySchedule);
    return std::pair{scaled_tree(grads, fn(count), kScaleBySchedule), detail::count_state(detail::next_count(count))};
  };
  return detail::traced_transformation("scale_by_schedule", std::move(out));
}

GradientTransformation add_decayed_weights(LearningRate weight_decay, Mask mask) {
  if (weight_decay.is_constant()) (void)weight_decay.at(0, kAddDecayedWeights);  // finite, checked by LearningRate
  const bool scheduled = !weight_decay.is_constant();
  GradientTransformation out;
  out.init = [scheduled](const Variables&) { return scheduled ? detail::count_state(0) : Variables(); };
  out.update = [weight_decay = std::move(weight_decay), scheduled](const Variables& grads, const Variables& state,
                                                                   const Variables& params) {
    detail::require_params(grads, params, "for the weight decay", kAddDecayedWeights);
    const std::int32_t count = scheduled ? detail::read_count(state, kAddDecayedWeights) : 0;
    const float s = weight_decay.at(count, kAddDecayedWeights);
    Variables next = scheduled ? detail::count_state(detail::next_count(count)) : Variables();
    if (!scheduled && s == 0.0f) return std::pair{grads, std::move(next)};  // as Optax: nothing to add
    detail::check_structure(grads, "the gradients", params, "the params", kAddDecayedWeights);
    Variables updates = tree_map(
        [s](std::string_view path, const Tensor& g, const Tensor& p) {
          detail::check_leaf(path, g, &p, "the param", kAddDecayedWeights);
          return detail::map_leaves(g, p, [s](float gi, float pi) { return gi + s * pi; });
        },
        grads, params);
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("add_decayed_weights",
                                       mask.is_everything() ? out : masked(std::move(out), std::move(mask)));
}

}  // namespace weft::optim
