// TrainState's checks: they run before the optimizer, so that a mistake in the training step is
// named in TrainState's terms (the gradients against the params) rather than inside Adam.
#include "weft/training/train_state.hpp"

#include <string>

#include "../format.hpp"
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
  throw KeyError(std::string(op) + ": " + given_name + " and " + expected_name + " differ in structure: " +
                 weft::detail::quoted(*path) + " is in " + (in_given ? given_name : expected_name) + " but not in " +
                 (in_given ? expected_name : given_name) + " (" + std::to_string(given.size()) + " vs " +
                 std::to_string(expected.size()) + " leaves); " + fix);
}

}  // namespace

void check_create(const Variables& params, const Variables& model_state, const optim::GradientTransformation& tx) {
  constexpr const char* op = "weft::training::TrainState::create";
  if (params.empty())
    throw ValueError(std::string(op) + ": the params are empty; pass the trained collection of the model's "
                     "variables (variables.collection(\"params\"))");
  for (const std::string& collection : params.collections())
    if (model_state.contains_collection(collection))
      throw ValueError(std::string(op) + ": the collection " + weft::detail::quoted(collection) +
                       " is both in the params and in the model state; pass variables.collection(\"params\") as the "
                       "params and variables.without(\"params\") as the model state");
  if (!tx.init || !tx.update)
    throw ValueError(std::string(op) + ": the optimizer has no " + (tx.init ? "update" : "init") +
                     " function; give a transformation made by weft::optim (adam, sgd, chain, ...)");
}

UpdatedParams apply_gradients(const optim::GradientTransformation& tx, const Variables& params,
                              const Variables& opt_state, const Variables& grads) {
  check_same_paths(grads, "the gradients", params, "the params", kApplyGradients,
                   "take the gradients with respect to state.params() (value_and_grad(loss)(state.params(), ...))");
  for (const auto& [path, g] : grads.leaves()) {
    const Tensor& p = params.at(path);
    if (g.shape() != p.shape())
      throw ShapeError(std::string(kApplyGradients) + ": at " + weft::detail::quoted(path) + " the gradient is " +
                       g.shape().str() + " but the param is " + p.shape().str() +
                       "; gradients must have the params' shapes");
  }
  auto [updates, next_opt_state] = tx.update(grads, opt_state, params);
  return {optim::apply_updates(params, updates), std::move(next_opt_state)};
}

void check_restored(std::int64_t step, const Variables& params, const Variables& opt_state,
                    const Variables& model_state, const Variables& current_params,
                    const Variables& current_opt_state, const Variables& current_model_state) {
  if (step < 0)
    throw ValueError(std::string(kRestored) + ": the step is " + std::to_string(step) +
                     "; a step counts the updates made and is at least 0");
  const std::string fix = "restore a checkpoint written for this model and optimizer (io::restore fits a tree to another)";
  check_same_paths(params, "the restored params", current_params, "the state's params", kRestored, fix);
  check_same_paths(opt_state, "the restored opt_state", current_opt_state, "the state's opt_state", kRestored, fix);
  check_same_paths(model_state, "the restored model state", current_model_state, "the state's model state", kRestored,
                   fix);
}

}  // namespace weft::training::detail
