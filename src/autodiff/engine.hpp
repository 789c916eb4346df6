#pragma once
// Internal: the backward pass from any output gradient, for the transforms that run one
// (autodiff::checkpoint) inside a node's backward.
#include <cstddef>
#include <vector>

#include "weft/tensor.hpp"

namespace weft::autodiff {

/// The gradients of the leaves 0..leaf_count-1 of the graph behind `output` when `output`'s own
/// gradient is `seed` (of output's shape): a vector-Jacobian product. An entry stays empty where
/// the output does not depend on that leaf.
std::vector<Tensor> backpropagate(const Tensor& output, const Tensor& seed, std::size_t leaf_count);

}  // namespace weft::autodiff
