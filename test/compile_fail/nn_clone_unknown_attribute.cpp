// clone with an attribute the module does not have.
// expect-error: WEFT_UNKNOWN_KEYWORD
// expect-error: {"featurs"}
// expect-output: {"featurs"}, Dense>
#include "common.hpp"

int main() {
  const Dense d{.features = 64};
  Dense e = weft::nn::clone(d, "featurs"_kw = 32);
  return e.use_bias;
}
