// A call-time keyword that the module does not take (a typo of `deterministic`): the first error
// line names the keyword, and the messages name the module's call_keywords record.
// expect-error: WEFT_UNKNOWN_KEYWORD
// expect-error: {"determinstic"}
// expect-output: weft::nn::Dropout::CallKeywords
#include "weft/nn/stochastic.hpp"

using namespace weft::literals;

weft::Tensor run(weft::nn::Scope& s, const weft::Tensor& x) {
  return s(weft::nn::Dropout{.rate = 0.1f}, x, "determinstic"_kw = true);
}

int main() {}
