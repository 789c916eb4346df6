// inject_hyperparams (optax.inject_hyperparams).
#include "weft/optim/inject.hpp"

#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "../format.hpp"
#include "internal.hpp"

namespace weft::optim {

namespace {

constexpr const char* kOp = "inject_hyperparams";

std::string hyperparam_path(std::string_view name) { return "hyperparams/" + std::string(name); }

}  // namespace

GradientTransformation inject_hyperparams(std::function<GradientTransformation(const Hyperparams&)> factory,
                                          std::map<std::string, LearningRate> hyperparams) {
  if (!factory) throw ValueError("weft::optim::inject_hyperparams: the factory is an empty std::function");
  for (const auto& [name, _] : hyperparams)
    if (name.empty() || name.find('/') != std::string::npos)
      throw ValueError(fmt::format("weft::optim::inject_hyperparams: the hyperparameter name {} is not a path "
                                   "segment; give a non-empty name without '/'",
                                   weft::detail::quoted(name)));
  struct Parts {
    std::function<GradientTransformation(const Hyperparams&)> factory;
    std::map<std::string, LearningRate> hyperparams;
  };
  auto parts = std::make_shared<const Parts>(Parts{std::move(factory), std::move(hyperparams)});
  const auto values_at = [](const Parts& p, const Variables* state, std::int64_t count) {
    Hyperparams values;
    for (const auto& [name, value] : p.hyperparams)
      values[name] = value.is_constant() && state != nullptr ? detail::read_scalar(*state, hyperparam_path(name), kOp)
                                                            : value.at(count, kOp);
    return values;
  };
  const auto as_state = [](const Hyperparams& values) {
    Variables out;
    for (const auto& [name, value] : values) out = out.set(hyperparam_path(name), detail::scalar(value));
    return out;
  };
  GradientTransformation out;
  out.init = [parts, values_at, as_state](const Variables& params) {
    const Hyperparams values = values_at(*parts, nullptr, 0);
    const GradientTransformation inner = parts->factory(values);
    const Variables inner_state = inner.init(params);
    Variables state = detail::count_state(0).merge(as_state(values));
    return inner_state.empty() ? state : state.merge(inner_state.prefixed("inner_state"));
  };
  out.update = [parts, values_at, as_state](const Variables& grads, const Variables& state, const Variables& params) {
    const std::int32_t count = detail::read_count(state, kOp);
    const Hyperparams values = values_at(*parts, &state, count);
    const GradientTransformation inner = parts->factory(values);
    auto [updates, inner_state] = inner.update(grads, state.unprefixed("inner_state"), params);
    Variables next = detail::count_state(detail::next_count(count)).merge(as_state(values));
    if (!inner_state.empty()) next = next.merge(inner_state.prefixed("inner_state"));
    return std::pair{std::move(updates), std::move(next)};
  };
  return detail::traced_transformation("inject_hyperparams", std::move(out));
}

float hyperparam(const Variables& state, std::string_view name) {
  return detail::read_scalar(state, hyperparam_path(name), "hyperparam");
}

Variables set_hyperparam(const Variables& state, std::string_view name, float value) {
  const std::string path = hyperparam_path(name);
  (void)detail::read_scalar(state, path, "set_hyperparam");
  if (!std::isfinite(value))
    throw ValueError(fmt::format("weft::optim::set_hyperparam: the value of \"{}\" is {}; it must be finite", name,
                                 value));
  return state.set(path, detail::scalar(value));
}

}  // namespace weft::optim
