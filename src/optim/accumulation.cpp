// ema (optax.ema) and MultiSteps (optax.MultiSteps).
#include "weft/optim/accumulation.hpp"

#include <cmath>
#include <memory>
#include <tuple>

#include <fmt/format.h>

#include "internal.hpp"

namespace weft::optim {

constexpr const char* kEma = "ema";

namespace {

using weft::detail::mutable_data;

}  // namespace

GradientTransformation ema(float decay, bool debias) {
  if (!(decay >= 0.0f && decay <= 1.0f))
    throw ValueError(fmt::format("weft::optim::ema: decay is {:.6g}; it must be in [0, 1] (e.g. 0.999)", decay));
  GradientTransformation out;
  out.init = [](const Variables& params) {
    return detail::count_state(0).merge(detail::zeros_like(params).prefixed("ema"));
  };
  out.update = [decay, debias](const Variables& grads, const Variables& state, const Variables&) {
    const std::int32_t count = detail::read_count(state, kEma);
    const Variables average = detail::state_part(state, "ema", grads, kEma);
    const std::int32_t t = detail::next_count(count);
    const float one_minus = static_cast<float>(1.0 - static_cast<double>(decay));
    // optax.bias_correction: ema / (1 - decay^t), the power in float32 as Optax's.
    const float correction = 1.0f - std::pow(decay, static_cast<float>(t));
    std::vector<Tensor> averages;
    averages.reserve(grads.size());
    Variables updates = tree_map(
        [&](std::string_view path, const Tensor& g, const Tensor& e) {
          detail::check_leaf(path, g, &e, "the state's ema", kEma);
          Tensor e2 = detail::map_leaves(g, e, [&](float gi, float ei) { return one_minus * gi + decay * ei; });
          Tensor u = debias ? detail::map_leaf(e2, [&](float x) { return x / correction; }) : e2;
          averages.push_back(std::move(e2));
          return u;
        },
        grads, average);
    Variables next = detail::count_state(t).merge(detail::rebuild(grads, averages).prefixed("ema"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("ema", std::move(out));
}

namespace {

constexpr const char* kMultiSteps = "MultiSteps";

Variables step_state(std::string_view name, std::int32_t value) {
  Tensor t = weft::detail::empty(Shape{}, DType::int32);
  mutable_data<std::int32_t>(t)[0] = value;
  return Variables().set(std::string(name) + "/" + std::string(name), std::move(t));
}

std::int32_t read_step(const Variables& state, std::string_view name) {
  const std::string path = std::string(name) + "/" + std::string(name);
  const Tensor* t = state.find(path);
  if (t == nullptr || t->dtype() != DType::int32 || t->size() != 1)
    throw KeyError(fmt::format("weft::optim::MultiSteps: the state has no int32 scalar \"{}\"; pass the state that "
                               "init(params) or the previous update returned",
                               path));
  return t->values<std::int32_t>()[0];
}

}  // namespace

MultiSteps::MultiSteps(GradientTransformation opt, std::int64_t every_k, bool use_grad_mean)
    : MultiSteps(std::move(opt), [every_k](std::int64_t) { return every_k; }, use_grad_mean) {
  if (every_k < 1)
    throw ValueError(fmt::format("weft::optim::MultiSteps: every_k is {}; it must be 1 or more (the number of "
                                 "micro-batches per optimizer step)",
                                 every_k));
}

MultiSteps::MultiSteps(GradientTransformation opt, std::function<std::int64_t(std::int64_t)> every_k_schedule,
                       bool use_grad_mean)
    : opt_(std::move(opt)), every_k_(std::move(every_k_schedule)), use_grad_mean_(use_grad_mean) {
  if (!opt_.init || !opt_.update)
    throw ValueError("weft::optim::MultiSteps: the inner optimizer has no init or update function");
  if (!every_k_) throw ValueError("weft::optim::MultiSteps: every_k_schedule is an empty std::function");
}

Variables MultiSteps::init(const Variables& params) const {
  Variables state = step_state("mini_step", 0).merge(step_state("gradient_step", 0));
  if (!params.empty()) state = state.merge(detail::zeros_like(params).prefixed("acc_grads"));
  const Variables inner = opt_.init(params);
  return inner.empty() ? state : state.merge(inner.prefixed("inner_opt_state"));
}

std::pair<Variables, Variables> MultiSteps::update(const Variables& grads, const Variables& state,
                                                   const Variables& params) const {
  if (weft::detail::recording_tracer == nullptr) return step(grads, state, params);
  const auto self = std::make_shared<const MultiSteps>(*this);  // the recorded op outlives this object
  return detail::traced_update(
      "MultiSteps",
      [self](const Variables& g, const Variables& s, const Variables& p) { return self->step(g, s, p); }, grads, state,
      params);
}

std::pair<Variables, Variables> MultiSteps::step(const Variables& grads, const Variables& state,
                                                 const Variables& params) const {
  const std::int32_t mini_step = read_step(state, "mini_step");
  const std::int32_t gradient_step = read_step(state, "gradient_step");
  const std::int64_t k = every_k_(gradient_step);
  if (k < 1)
    throw ValueError(fmt::format("weft::optim::MultiSteps: every_k_schedule({}) is {}; it must be 1 or more",
                                 gradient_step, k));
  const Variables acc = grads.empty() ? grads : detail::state_part(state, "acc_grads", grads, kMultiSteps);
  const float n = static_cast<float>(mini_step) + 1.0f;
  const bool mean = use_grad_mean_;
  Variables acc2 = tree_map(
      [n, mean](std::string_view path, const Tensor& g, const Tensor& a) {
        detail::check_leaf(path, g, &a, "the state's acc_grads", kMultiSteps);
        return detail::map_leaves(g, a, [&](float gi, float ai) { return mean ? ai + (gi - ai) / n : gi + ai; });
      },
      grads, acc);
  const Variables inner_state = state.unprefixed("inner_opt_state");
  const bool emit = mini_step == k - 1;
  Variables updates, inner_next;
  Variables next = step_state("mini_step", static_cast<std::int32_t>((static_cast<std::int64_t>(mini_step) + 1) % k))
                       .merge(step_state("gradient_step", emit ? detail::next_count(gradient_step) : gradient_step));
  if (emit) {
    std::tie(updates, inner_next) = opt_.update(acc2, inner_state, params);
    acc2 = detail::zeros_like(acc2);
  } else {
    updates = detail::zeros_like(grads);
    inner_next = inner_state;
  }
  if (!acc2.empty()) next = next.merge(acc2.prefixed("acc_grads"));
  if (!inner_next.empty()) next = next.merge(inner_next.prefixed("inner_opt_state"));
  return {std::move(updates), std::move(next)};
}

bool MultiSteps::has_updated(const Variables& state) const {
  return read_step(state, "mini_step") == 0 && read_step(state, "gradient_step") > 0;
}

GradientTransformation MultiSteps::gradient_transformation() const {
  GradientTransformation out;
  const auto self = std::make_shared<const MultiSteps>(*this);
  out.init = [self](const Variables& params) { return self->init(params); };
  out.update = [self](const Variables& grads, const Variables& state, const Variables& params) {
    return self->update(grads, state, params);
  };
  return out;
}

}  // namespace weft::optim
