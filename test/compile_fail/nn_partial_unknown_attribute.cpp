// A module template names an attribute the module does not have: the error names both.
// expect-error: WEFT_UNKNOWN_KEYWORD
// expect-error: {"bias"}
// expect-output: {"bias"}, Dense>
#include "common.hpp"

int main() {
  auto dense_template = weft::nn::partial<Dense>("bias"_kw = false);
  (void)dense_template;
}
