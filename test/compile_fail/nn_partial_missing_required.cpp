// A module template called without one of the module's required attributes.
// expect-error: WEFT_MISSING_REQUIRED
// expect-error: {"features"}
// expect-output: {"features"}, Dense>
#include "common.hpp"

int main() {
  Dense d = weft::nn::partial<Dense>("use_bias"_kw = false)();
  return d.use_bias;
}
