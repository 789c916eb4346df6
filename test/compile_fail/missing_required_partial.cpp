// A required field never bound by the time of the call.
// expect-error: WEFT_MISSING_REQUIRED
// expect-error: {"features"}
// expect-output: {"features"}, DenseOptions>
#include "common.hpp"

int main() {
  auto d = weft::partial(dense, "use_bias"_kw = false);
  return static_cast<int>(d(2));
}
