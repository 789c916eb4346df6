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
}
