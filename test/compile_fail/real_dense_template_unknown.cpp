// A template of weft's nn::Dense that names an attribute Dense does not have (`feature` for
// `features`): the error names the attribute and the module.
// expect-error: WEFT_UNKNOWN_KEYWORD
// expect-error: {"feature"}
// expect-output: {"feature"}, weft::nn::Dense>
#include "weft/nn/linear.hpp"
#include "weft/nn/partial.hpp"

using namespace weft::literals;

int main() {
  const auto dense = weft::nn::partial<weft::nn::Dense>("feature"_kw = 64);
  (void)dense;
}
