#pragma once
// Activations for layer functions, as Flax re-exports jax.nn's (flax.linen.activation): the weft ops
// themselves, so `core::relu(x)` inside a core layer is weft::relu, with its gradient.
#include "weft/ops.hpp"

namespace weft::core {

using weft::gelu;
using weft::log_softmax;
using weft::relu;
using weft::sigmoid;
using weft::silu;
using weft::softmax;
using weft::tanh;

}  // namespace weft::core
