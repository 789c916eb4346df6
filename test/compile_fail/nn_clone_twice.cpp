// clone replacing the same attribute twice in one call.
// expect-error: WEFT_KEYWORD_BOUND_TWICE
// expect-error: {"features"}
// expect-output: {"features"}, Dense>
#include "common.hpp"

int main() {
  const Dense d{.features = 64};
  Dense e = weft::nn::clone(d, "features"_kw = 32, "features"_kw = 16);
  return e.use_bias;
}
