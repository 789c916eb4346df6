// nn::Scan's loop: each layer in a copy of the call's state holding its slice of the stacked
// variables; what the layers create, stacked.
#include "weft/nn/scan.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "weft/error.hpp"
#include "weft/ops.hpp"
#include "weft/random.hpp"

namespace weft::nn::detail {

namespace {

/// Layer `i` of a stacked leaf: t[i], differentiable (its gradient lands in slice i).
Tensor layer_slice(const Tensor& t, int i) {
  const std::vector<std::int64_t> dims = t.shape().to_vector();
  return reshape(slice_axis(t, 0, i, i + 1), Shape(std::vector<std::int64_t>(dims.begin() + 1, dims.end())));
}

/// The layers' values of one leaf, stacked on a new leading axis.
Tensor stack_layers(const std::vector<Tensor>& layers) {
  std::vector<Tensor> rows;
  rows.reserve(layers.size());
  for (const Tensor& t : layers) {
    std::vector<std::int64_t> dims = t.shape().to_vector();
    dims.insert(dims.begin(), 1);
    rows.push_back(reshape(t, Shape(dims)));
  }
  return concat(rows, 0);
}

}  // namespace

Tensor scan_call(core::Scope& scope, const Tensor& carry, const RunContext& run, const ScanOptions& options,
                 const ScanBody& body, const std::string& where) {
  if (options.length <= 0)
    throw ValueError(fmt::format("weft::nn::Scan: length must be positive, got {} (in {}); set it to the number of "
                                 "layers, e.g. nn::Scan<Block>{{.module = block, .length = 6}}",
                                 options.length, where));
  for (const std::string& c : options.variable_axes)
    if (c.empty() || c.find('/') != std::string::npos)
      throw ValueError(fmt::format("weft::nn::Scan: invalid collection name \"{}\" in variable_axes (in {}); "
                                   "collection names are non-empty and contain no '/'",
                                   c, where));
  core::detail::ScopeRoot& root = core::detail::root_of(scope);
  const std::string below = scope.path_str() == "/" ? std::string() : scope.path_str();
  const auto leaves_below = [&below](const Variables& v, const std::string& c) {
    return v.subtree(fmt::format("{}{}", c, below)).leaves();
  };
  // What apply was given: every stacked leaf holds one slice per layer.
  for (const std::string& c : options.variable_axes)
    for (const auto& [path, value] : leaves_below(root.variables, c))
      if (value.rank() == 0 || value.shape()[0] != options.length)
        throw ShapeError(fmt::format("weft::nn::Scan: variable \"{}\" has shape {}, but {} stacks the \"{}\" "
                                     "collection of its {} layers on a leading axis of {}; pass the variables "
                                     "that init made for a scan of the same length",
                                     path, value.shape().str(), where, c, options.length, options.length));
  std::map<std::string, std::vector<Key>, std::less<>> layer_keys;
  for (const std::string& stream : options.split_rngs)
    if (root.rngs.contains(stream)) layer_keys.emplace(stream, split(scope.make_rng(stream), options.length));

  const Shape carry_shape = carry.shape();
  const DType carry_dtype = carry.dtype();
  // Per stacked collection, per path, the value of each layer.
  std::map<std::string, std::map<std::string, std::vector<Tensor>>> written;
  decltype(root.rng_counters) last_counters;
  Tensor x = carry;
  for (int i = 0; i < options.length; ++i) {
    core::detail::ScopeRoot replica;
    Variables variables = root.variables;
    for (const std::string& c : options.variable_axes)
      for (const auto& [path, value] : leaves_below(root.variables, c))
        variables = variables.set(path, layer_slice(value, i));
    replica.variables = std::move(variables);
    replica.rngs = root.rngs;
    replica.rng_counters = root.rng_counters;
    for (const auto& entry : layer_keys) {
      replica.rngs.insert_or_assign(entry.first, entry.second[static_cast<std::size_t>(i)]);
      std::erase_if(replica.rng_counters, [&entry](const auto& counter) { return counter.first.second == entry.first; });
    }
    replica.mutable_collections = root.mutable_collections;
    replica.initializing = root.initializing;
    std::vector<core::Scope> chain;
    const std::vector<std::string> names = scope.path();
    chain.reserve(names.size() + 1);
    chain.push_back(core::detail::make_root_scope(replica));
    for (const std::string& name : names) chain.push_back(chain.back().push(name));
    RunContext layer_run = run;
    if (i > 0) layer_run.log = nullptr;  // tabulate lists the layers' modules once
    Tensor y = body(chain.back(), x, layer_run);
    if (!y.defined() || !(y.shape() == carry_shape) || y.dtype() != carry_dtype)
      throw ShapeError(fmt::format("weft::nn::Scan: layer {} of {} returned {} for a carry of shape {} {}; the block "
                                   "must return a carry of its input's shape and dtype (e.g. a Dense with as many "
                                   "features as its input has)",
                                   i, where,
                                   y.defined() ? fmt::format("shape {} {}", y.shape().str(), weft::name(y.dtype()))
                                               : std::string("an empty tensor"),
                                   carry_shape.str(), weft::name(carry_dtype)));
    for (const std::string& c : options.variable_axes)
      for (auto& [path, value] : leaves_below(replica.variables, c)) written[c][path].push_back(std::move(value));
    // The shared collections carry over to the next layer and out of the scan.
    Variables shared = replica.variables;
    for (const std::string& c : options.variable_axes) shared = shared.without(c);
    root.variables = root.variables.merge(shared);
    last_counters = std::move(replica.rng_counters);
    x = std::move(y);
  }
  // Broadcast streams continue from where the layers left them; split ones from the split.
  for (auto& counter : last_counters)
    if (!layer_keys.contains(counter.first.second)) root.rng_counters.insert_or_assign(counter.first, counter.second);
  // What the layers created (init) or changed (a mutable collection), stacked.
  for (const std::string& c : options.variable_axes) {
    if (!root.initializing && (c == "params" || !root.mutable_collections.contains(c))) continue;
    for (const auto& [path, layers] : written[c]) {
      if (layers.size() != static_cast<std::size_t>(options.length))
        throw ValueError(fmt::format("weft::nn::Scan: variable \"{}\" was made by {} of the {} layers of {}; every "
                                     "layer must make the same variables",
                                     path, layers.size(), options.length, where));
      root.variables = root.variables.set(path, stack_layers(layers));
    }
  }
  return x;
}

}  // namespace weft::nn::detail
