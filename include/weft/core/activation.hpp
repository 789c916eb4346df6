#pragma once
// Activations for layer functions, as Flax re-exports jax.nn's (flax.linen.activation): the weft ops
// themselves, so `core::relu(x)` inside a core layer is weft::relu, with its gradient.
#include "weft/ops.hpp"

namespace weft::core {

using weft::celu;
using weft::elu;
using weft::gelu;
using weft::glu;
using weft::hard_tanh;
using weft::leaky_relu;
using weft::log_sigmoid;
using weft::log_softmax;
using weft::relu;
using weft::selu;
using weft::sigmoid;
using weft::silu;
using weft::softmax;
using weft::softplus;
using weft::standardize;
using weft::swish;
using weft::tanh;

}  // namespace weft::core
