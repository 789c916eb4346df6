// A module attribute whose type differs from the core option of the same name (a float where the
// options hold a bool): the copy into the core options names the field and both types.
// expect-error: WEFT_ATTRIBUTE_TYPE_DIFFERS
// expect-error: {"use_bias"}, float, bool>
#include "weft/nn/core_options.hpp"
#include "weft/nn/linear.hpp"

struct MyDense {
  weft::required<std::int64_t, "features"> features;
  float use_bias = 1.0f;
  weft::core::Initializer kernel_init = weft::core::initializers::lecun_normal();
  weft::core::Initializer bias_init = weft::core::initializers::zeros();
};
WEFT_RECORD(MyDense, features, use_bias, kernel_init, bias_init);

int main() { (void)weft::nn::core_options<weft::core::DenseOptions>(MyDense{.features = 2}); }
