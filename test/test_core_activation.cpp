// The core activations are weft's ops.
#include <vector>

#include "testing.hpp"
#include "weft/core.hpp"

using namespace weft;
using weft::testing::check_close;

// ------------------------------------------------------------------------------------- activation

TEST_CASE("core activations are weft's ops") {
  const Tensor x({-1.0f, 0.5f}, Shape{2});
  check_close(core::relu(x), {0.0f, 0.5f}, Shape{2});
  check_close(core::tanh(x), weft::tanh(x));
  check_close(core::sigmoid(x), weft::sigmoid(x));
  check_close(core::silu(x), x * weft::sigmoid(x));
  check_close(core::gelu(x), weft::gelu(x));
  check_close(core::softmax(x), weft::softmax(x));
  check_close(core::log_softmax(x), weft::log_softmax(x));
  // jax.nn's others, as flax.linen re-exports them.
  check_close(core::leaky_relu(x), weft::leaky_relu(x));
  check_close(core::elu(x), weft::elu(x));
  check_close(core::selu(x), weft::selu(x));
  check_close(core::celu(x), weft::celu(x));
  check_close(core::softplus(x), weft::softplus(x));
  check_close(core::log_sigmoid(x), weft::log_sigmoid(x));
  check_close(core::hard_tanh(x), weft::hard_tanh(x));
  check_close(core::swish(x), weft::silu(x));
  check_close(core::glu(x), weft::glu(x));
  check_close(core::standardize(x), weft::standardize(x));
}
