#pragma once
// Internal: the recorded graph of reverse-mode autodiff.
//
// An op whose input carries a node (a value that depends on what is being
// differentiated) attaches a node to its output: the op's name, the input
// nodes, and a closure computing the input gradients from the output
// gradient. Untracked inputs have no node, so when no gradient is taken
// nothing is recorded and the only cost is a null check per input.
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "../tensor_impl.hpp"

namespace weft::autodiff {

class Node {
 public:
  explicit Node(const char* op) noexcept : op_(op) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  [[nodiscard]] const char* op() const noexcept { return op_; }
  /// One entry per input of the op; null where the input needs no gradient.
  std::vector<std::shared_ptr<Node>> inputs;
  /// Writes into input_grads[i] the gradient for input i (for each non-null inputs[i]).
  /// An entry left empty means a zero gradient.
  virtual void backward(const Tensor& grad_output, std::span<Tensor> input_grads) = 0;
  /// True when the backward runs only ops and backward passes (autodiff::checkpoint's
  /// recomputation): a weft::jit trace then records those ops, not the node as one step.
  bool backward_is_ops = false;

 private:
  const char* op_;
};

/// A parameter being differentiated; the backward pass collects its gradient at `index`.
class LeafNode final : public Node {
 public:
  explicit LeafNode(std::size_t index) noexcept : Node("leaf"), index(index) {}
  void backward(const Tensor&, std::span<Tensor>) override {}
  std::size_t index;
};

template <class F>
class FnNode final : public Node {
 public:
  FnNode(const char* op, F f) : Node(op), f_(std::move(f)) {}
  void backward(const Tensor& g, std::span<Tensor> grads) override { f_(g, grads); }

 private:
  F f_;
};

template <class... Ts>
[[nodiscard]] inline bool any_tracked(const Ts&... ts) noexcept {
  return ((weft::detail::node_of(ts) != nullptr) || ...);
}

/// Attaches to `out` a node for `op` over `inputs` (an input may be an empty Tensor: an absent operand);
/// `backward(g, grads)` fills the input gradients.
/// Call only when any_tracked(inputs...); capture detached values (weft::detail::detach) in `backward`
/// so that the backward pass itself records nothing.
template <class F>
void record(Tensor& out, const char* op, std::initializer_list<const Tensor*> inputs, F backward) {
  auto node = std::make_shared<FnNode<F>>(op, std::move(backward));
  node->inputs.reserve(inputs.size());
  for (const Tensor* t : inputs) node->inputs.push_back(weft::detail::node_of(*t) ? weft::detail::node_ptr(*t) : nullptr);
  weft::detail::set_node(out, std::move(node));
}

/// Same, for ops with a runtime number of inputs (concat).
template <class F>
void record(Tensor& out, const char* op, std::span<const Tensor> inputs, F backward) {
  auto node = std::make_shared<FnNode<F>>(op, std::move(backward));
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) node->inputs.push_back(weft::detail::node_of(t) ? weft::detail::node_ptr(t) : nullptr);
  weft::detail::set_node(out, std::move(node));
}

/// record, for a backward that only runs weft ops (traced ones) on values the op read or returned
/// and on the gradient: a weft::jit trace then records those ops, which it can lower and fuse,
/// instead of replaying the node.
template <class F>
void record_ops(Tensor& out, const char* op, std::initializer_list<const Tensor*> inputs, F backward) {
  record(out, op, inputs, std::move(backward));
  weft::detail::node_of(out)->backward_is_ops = true;
}
template <class F>
void record_ops(Tensor& out, const char* op, std::span<const Tensor> inputs, F backward) {
  record(out, op, inputs, std::move(backward));
  weft::detail::node_of(out)->backward_is_ops = true;
}

/// Throws when `t` is tracked: `op` has no gradient rule.
void require_untracked(const Tensor& t, const char* op);

}  // namespace weft::autodiff
