#pragma once
// Gradient checkpointing of a function of tensors: weft::autodiff::checkpoint (jax.checkpoint,
// alias jax.remat). nn::Remat (weft/nn/remat.hpp) applies it to a module.
#include <functional>
#include <span>
#include <string_view>

#include "weft/tensor.hpp"

namespace weft::autodiff {

/// A function checkpointed by autodiff::checkpoint: its result from its inputs.
using CheckpointFunction = std::function<Tensor(std::span<const Tensor> inputs)>;

/// jax.checkpoint for a function of tensors: f(inputs), recorded as one node that keeps `inputs`
/// (and what f holds) but none of f's intermediate values. The backward pass calls f again on the
/// inputs, recorded, and backpropagates the output gradient through that recomputation, so the
/// gradients are those of f without checkpointing, with the same arithmetic (bit for bit where
/// each input's gradient is summed in the same order, e.g. an input used by f only). f is called
/// first with the inputs detached, then once per backward pass; it must compute the same values on
/// every call (random bits from keys it holds, not from state that changes between calls). When no
/// input is tracked, f is called once and nothing is recorded. A result that is tracked although
/// every input was detached (f captured a tensor being differentiated) is a weft::ValueError
/// naming `where`: pass that tensor as an input instead. (jax.checkpoint's `policy`, which keeps
/// some intermediates, and `prevent_cse`, an XLA barrier, have no counterpart: everything inside
/// f is recomputed.)
Tensor checkpoint(CheckpointFunction f, std::span<const Tensor> inputs,
                  std::string_view where = "weft::autodiff::checkpoint");

}  // namespace weft::autodiff
