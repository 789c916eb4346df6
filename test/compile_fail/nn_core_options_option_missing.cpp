// A module that lacks one of its core layer's options (bias_init): the default would silently
// drift from the core layer's, so the copy is a compile error naming the option and both records.
// expect-error: WEFT_OPTION_NOT_AN_ATTRIBUTE
// expect-error: {"bias_init"}, weft::core::DenseOptions, MyDense>
#include "weft/nn/core_options.hpp"
#include "weft/nn/linear.hpp"

struct MyDense {
  weft::required<std::int64_t, "features"> features;
  bool use_bias = true;
  weft::core::Initializer kernel_init = weft::core::initializers::lecun_normal();
};
WEFT_RECORD(MyDense, features, use_bias, kernel_init);

int main() { (void)weft::nn::core_options<weft::core::DenseOptions>(MyDense{.features = 2}); }
