// The backward pass: topological order over the recorded nodes, then gradients from the output back.
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "../jit/trace.hpp"
#include "../tensor_impl.hpp"
#include "engine.hpp"
#include "node.hpp"
#include "weft/autodiff.hpp"
#include "weft/ops.hpp"

namespace weft {

namespace autodiff {

Tensor track_leaf(const Tensor& value, std::size_t index) {
  weft::detail::require_float(value, "grad");
  Tensor t = weft::detail::detach(value);
  weft::detail::set_node(t, std::make_shared<LeafNode>(index));
  return t;
}

void require_untracked(const Tensor& t, const char* op) {
  if (t.is_tracked())
    throw Error(fmt::format("weft::grad: '{}' is not differentiable, and its input depends on what is being "
                            "differentiated; apply weft::stop_gradient to its input if no gradient should flow "
                            "through it",
                            op));
}

void check_scalar_output(const Tensor& value, const char* where) {
  if (!value.defined() || value.dtype() != DType::float32 || value.rank() != 0)
    throw ShapeError(fmt::format("weft::{}: the function must return a scalar (rank 0) float32 tensor, "
                                 "got {}; reduce it first, e.g. with weft::mean",
                                 where,
                                 value.defined()
                                     ? fmt::format("{} of shape {}", name(value.dtype()), value.shape().str())
                                     : std::string("an empty tensor")));
}

std::vector<Tensor> backpropagate(const Tensor& output, const Tensor& seed, std::size_t leaf_count) {
  std::vector<Tensor> result(leaf_count);
  Node* root = weft::detail::node_of(output);
  if (root) {
    // Post-order DFS gives inputs before users; walk it backwards.
    std::vector<Node*> order;
    std::unordered_set<Node*> visited;
    std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};
    visited.insert(root);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < node->inputs.size()) {
        Node* in = node->inputs[next++].get();
        if (in && visited.insert(in).second) stack.emplace_back(in, 0);
      } else {
        order.push_back(node);
        stack.pop_back();
      }
    }
    std::unordered_map<Node*, Tensor> grads;
    grads.emplace(root, seed);
    std::vector<Tensor> input_grads;
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* node = *it;
      auto found = grads.find(node);
      if (found == grads.end()) continue;
      const Tensor g = std::move(found->second);
      grads.erase(found);
      if (auto* leaf = dynamic_cast<LeafNode*>(node)) {
        Tensor& r = result[leaf->index];
        r = r.defined() ? r + g : g;
        continue;
      }
      input_grads.assign(node->inputs.size(), Tensor{});
      if (weft::detail::Tracer* tracer = weft::detail::recording())
        tracer->backward(*node, g, input_grads);  // recorded as one step of a weft::jit plan
      else
        node->backward(g, input_grads);
      for (std::size_t i = 0; i < node->inputs.size(); ++i) {
        Node* in = node->inputs[i].get();
        if (!in || !input_grads[i].defined()) continue;
        auto [slot, inserted] = grads.try_emplace(in, input_grads[i]);
        if (!inserted) slot->second = slot->second + input_grads[i];
      }
    }
  }
  return result;
}

std::vector<Tensor> gradients(const Tensor& output, std::span<const Tensor> leaves) {
  std::vector<Tensor> result = backpropagate(output, ones(Shape{}), leaves.size());
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (!result[i].defined()) result[i] = zeros(leaves[i].shape());
  }
  return result;
}

}  // namespace autodiff

}  // namespace weft
