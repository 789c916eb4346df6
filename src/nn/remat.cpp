// nn::Remat's checkpointed call: the live forward in the module's scope, its replay in a copy.
#include "weft/nn/remat.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "weft/ops.hpp"
#include "weft/remat.hpp"

namespace weft::nn::detail {

namespace {

/// What a recomputation needs from the call: the state of its scope as the call began.
struct RematState {
  RematBody body;
  RunContext run;                  // the live call's; a recomputation runs without one
  core::Scope* live = nullptr;     // the call's scope while the forward runs; null afterwards
  std::vector<std::string> path;   // the scope's module names from the root
  std::size_t tensor_inputs = 0;   // the inputs before the parameters
  std::vector<std::string> param_paths;  // the tracked parameters, after the tensor inputs
  Variables variables;             // every collection's variables under the scope, detached
  core::Rngs rngs;
  core::Mutable mutable_collections;
  std::map<std::pair<std::string, std::string>, std::uint32_t, std::less<>> rng_counters;
};

/// `variables` with the tracked parameters replaced by `values`.
Variables with_params(Variables variables, const RematState& state, std::span<const Tensor> values) {
  for (std::size_t i = 0; i < state.param_paths.size(); ++i)
    variables = variables.set(state.param_paths[i], values[state.tensor_inputs + i]);
  return variables;
}

Tensor run_once(RematState& state, std::span<const Tensor> all) {
  const auto inputs = all.first(state.tensor_inputs);
  if (state.live) {
    // The forward: in the call's own scope (its sow, batch-statistics updates and random counters
    // are the call's), with the parameters detached so that nothing inside is recorded; the tracked
    // ones are put back afterwards, also when the module throws.
    core::detail::ScopeRoot& root = core::detail::root_of(*state.live);
    std::vector<Tensor> tracked;
    tracked.reserve(state.param_paths.size());
    for (const std::string& p : state.param_paths) tracked.push_back(root.variables.at(p));
    struct Restore {
      core::detail::ScopeRoot& root;
      const std::vector<std::string>& paths;
      const std::vector<Tensor>& values;
      ~Restore() {
        for (std::size_t i = 0; i < paths.size(); ++i) root.variables = root.variables.set(paths[i], values[i]);
      }
    };
    root.variables = with_params(root.variables, state, all);
    const Restore restore{root, state.param_paths, tracked};
    return state.body(*state.live, inputs, state.run);
  }
  // The recomputation: a copy of the call's state, the same path, the same random counters.
  core::detail::ScopeRoot replica;
  replica.variables = with_params(state.variables, state, all);
  replica.rngs = state.rngs;
  replica.mutable_collections = state.mutable_collections;
  replica.rng_counters = state.rng_counters;
  std::vector<core::Scope> chain;
  chain.reserve(state.path.size() + 1);
  chain.push_back(core::detail::make_root_scope(replica));
  for (const std::string& name : state.path) chain.push_back(chain.back().push(name));
  return state.body(chain.back(), inputs, RunContext{});
}

}  // namespace

Tensor remat_call(core::Scope& scope, std::span<const Tensor> inputs, const RunContext& run, RematBody body,
                  const std::string& where) {
  core::detail::ScopeRoot& root = core::detail::root_of(scope);
  if (root.initializing) return body(scope, inputs, run);
  const std::string below = scope.path_str() == "/" ? std::string() : scope.path_str();
  auto state = std::make_shared<RematState>();
  state->tensor_inputs = inputs.size();
  std::vector<Tensor> all(inputs.begin(), inputs.end());
  bool any_tracked = false;
  for (const Tensor& t : inputs) any_tracked = any_tracked || t.is_tracked();
  for (const auto& [path, value] : root.variables.subtree("params" + below).leaves()) {
    if (!value.is_tracked()) continue;
    state->param_paths.push_back(path);
    all.push_back(value);
    any_tracked = true;
  }
  if (!any_tracked) return body(scope, inputs, run);  // nothing to differentiate: nothing to keep
  for (const std::string& c : root.variables.collections())
    state->variables = state->variables.merge(root.variables.subtree(c + below));
  state->variables = tree_map([](const Tensor& t) { return stop_gradient(t); }, state->variables);
  state->body = std::move(body);
  state->run = run;
  state->live = &scope;
  state->path = scope.path();
  state->rngs = root.rngs;
  state->mutable_collections = root.mutable_collections;
  state->rng_counters = root.rng_counters;
  struct EndLive {
    RematState& state;
    ~EndLive() {
      state.live = nullptr;
      state.run = RunContext{};  // its log belongs to this call
    }
  };
  const EndLive end{*state};
  return autodiff::checkpoint([state](std::span<const Tensor> in) { return run_once(*state, in); }, all,
                              fmt::format("weft::nn::Remat: {}", where));
}

}  // namespace weft::nn::detail
