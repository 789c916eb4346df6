// weft's nn::Dense in aggregate initialisation without its required `features`: the first error
// line names the field, because its type carries the name (required<std::int64_t, "features">).
// expect-error: explicit
// expect-error: {"features"}
#include "weft/nn/linear.hpp"

int main() {
  const weft::nn::Dense d{.use_bias = false};
  return d.use_bias ? 1 : 0;
}
