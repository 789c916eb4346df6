// TrainState's checks: they run before the optimizer, so that a mistake in the training step is
// named in TrainState's terms (the gradients against the params) rather than inside Adam.
#include "weft/training/train_state.hpp"

#include <limits>
#include <string>

#include <fmt/format.h>

#include "../format.hpp"
#include "../jit/trace.hpp"
#include "../optim/internal.hpp"
#include "../tensor_impl.hpp"
#include "weft/error.hpp"

namespace weft::training::detail {

namespace {

constexpr const char* kApplyGradients = "weft::training::TrainState::apply_gradients";
constexpr const char* kRestored = "weft::training::TrainState::restored";

/// A weft::KeyError naming the first path in one tree and not the other.
void check_same_paths(const Variables& given, const char* given_name, const Variables& expected,
                      const char* expected_name, const char* op, const std::string& fix) {
  const auto path = structure_difference(given, expected);
  if (!path) return;
  const bool in_given = given.contains(*path);
  throw KeyError(fmt::format("{}: {} and {} differ in structure: {} is in {} but not in {} ({} vs {} leaves); {}",
                             op, given_name, expected_name, weft::detail::quoted(*path),
                             (in_given ? given_name : expected_name), (in_given ? expected_name : given_name),
                             given.size(), expected.size(), fix));
}

}  // namespace

Tensor next_step(const Tensor& step) {
  return weft::detail::traced(
      "increment_step",
      [](const Tensor& s) { return full(Shape{}, optim::detail::next_count(weft::detail::data<std::int32_t>(s)[0])); },
      step);
}

std::int64_t step_value(const Tensor& step) {
  if (weft::detail::recording_tracer != nullptr)
    weft::detail::recording_tracer->check_read(step, "weft::training::TrainState::step() (use step_tensor())");
  return static_cast<const std::int32_t*>(weft::detail::TensorAccess::impl(step)->data)[0];
}

void check_create(const Variables& params, const Variables& model_state, const optim::GradientTransformation& tx) {
  constexpr const char* op = "weft::training::TrainState::create";
  if (params.empty())
    throw ValueError(fmt::format("{}: the params are empty; pass the trained collection of the model's "
                                 "variables (variables.collection(\"params\"))", op));
  for (const std::string& collection : params.collections())
    if (model_state.contains_collection(collection))
      throw ValueError(fmt::format("{}: the collection {} is both in the params and in the model state; "
                                   "pass variables.collection(\"params\") as the params and "
                                   "variables.without(\"params\") as the model state",
                                   op, weft::detail::quoted(collection)));
  if (!tx.init || !tx.update)
    throw ValueError(fmt::format("{}: the optimizer has no {} function; give a transformation "
                                 "made by weft::optim (adam, sgd, chain, ...)", op, (tx.init ? "update" : "init")));
}

UpdatedParams apply_gradients(const optim::GradientTransformation& tx, const Variables& params,
                              const Variables& opt_state, const Variables& grads) {
  check_same_paths(grads, "the gradients", params, "the params", kApplyGradients,
                   "take the gradients with respect to state.params() (value_and_grad(loss)(state.params(), ...))");
  for (const auto& [path, g] : grads.leaves()) {
    const Tensor& p = params.at(path);
    if (g.shape() != p.shape())
      throw ShapeError(fmt::format("{}: at {} the gradient is {} but the param is {}; "
                                   "gradients must have the params' shapes",
                                   kApplyGradients, weft::detail::quoted(path), g.shape().str(), p.shape().str()));
  }
  auto [updates, next_opt_state] = tx.update(grads, opt_state, params);
  return {optim::apply_updates(params, updates), std::move(next_opt_state)};
}

void check_restored(std::int64_t step, const Variables& params, const Variables& opt_state,
                    const Variables& model_state, const Variables& current_params,
                    const Variables& current_opt_state, const Variables& current_model_state) {
  if (step < 0 || step > std::numeric_limits<std::int32_t>::max())
    throw ValueError(fmt::format("{}: the step is {}; a step counts the updates made, from 0 to {} (an int32, as "
                                 "Optax's count)",
                                 kRestored, step, std::numeric_limits<std::int32_t>::max()));
  const std::string fix = "restore a checkpoint written for this model and optimizer (io::restore fits a tree to another)";
  check_same_paths(params, "the restored params", current_params, "the state's params", kRestored, fix);
  check_same_paths(opt_state, "the restored opt_state", current_opt_state, "the state's opt_state", kRestored, fix);
  check_same_paths(model_state, "the restored model state", current_model_state, "the state's model state", kRestored,
                   fix);
}

}  // namespace weft::training::detail
