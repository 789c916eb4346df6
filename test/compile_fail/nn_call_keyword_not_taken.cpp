// A call-time keyword passed to a module that takes none.
// expect-error: WEFT_MODULE_TAKES_NO_KEYWORDS
// expect-error: {"deterministic"}, weft::nn::Dense>
#include "weft/nn/linear.hpp"

using namespace weft::literals;

weft::Tensor run(weft::nn::Scope& s, const weft::Tensor& x) {
  return s(weft::nn::Dense{.features = 2}, x, "deterministic"_kw = true);
}

int main() {}
