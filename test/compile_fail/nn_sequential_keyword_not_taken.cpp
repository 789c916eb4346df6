// nn::Sequential forwards a call-time keyword to the layers that take it; one that no layer takes
// is a compile error naming the keyword and the Sequential.
// expect-error: WEFT_NO_LAYER_TAKES_KEYWORD
// expect-error: {"use_running_average"}, weft::nn::Sequential<weft::nn::Dense, weft::nn::Dropout>
#include "weft/nn/linear.hpp"
#include "weft/nn/sequential.hpp"
#include "weft/nn/stochastic.hpp"

using namespace weft::literals;

int main() {
  const auto model = weft::nn::sequential(weft::nn::Dense{.features = 2}, weft::nn::Dropout{.rate = 0.1f});
  const weft::Tensor x;
  (void)weft::nn::init(model, weft::Key(0), x, "deterministic"_kw = true, "use_running_average"_kw = false);
}
