// A module template fixes an attribute, and the call fixes it again.
// expect-error: WEFT_KEYWORD_BOUND_TWICE
// expect-error: {"use_bias"}
// expect-output: {"use_bias"}, Dense>
#include "common.hpp"

int main() {
  auto dense_template = weft::nn::partial<Dense>("use_bias"_kw = false);
  Dense d = dense_template("features"_kw = 64, "use_bias"_kw = true);
  return d.use_bias;
}
