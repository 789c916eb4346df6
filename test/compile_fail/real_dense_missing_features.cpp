// nn::Dense without its required `features`: the template is fine, but making the module without
// the attribute is a compile error that names it.
// expect-error: WEFT_MISSING_REQUIRED
// expect-error: {"features"}
// expect-output: {"features"}, weft::nn::Dense>
#include "weft/nn/linear.hpp"
#include "weft/nn/partial.hpp"

using namespace weft::literals;

int main() {
  const auto dense = weft::nn::partial<weft::nn::Dense>("use_bias"_kw = false);
  const weft::nn::Dense d = dense();
  (void)d;
}
