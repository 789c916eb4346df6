// The seed's keyword binding on weft's own core::dropout: `deterministic` fixed ahead of the call and
// given again at the call is a compile error that names it.
// expect-error: WEFT_KEYWORD_BOUND_TWICE
// expect-error: {"deterministic"}
// expect-output: {"deterministic"}, weft::core::DropoutOptions>
#include "weft/core/stochastic.hpp"
#include "weft/partial.hpp"

using namespace weft::literals;

void run(weft::core::Scope& s, const weft::Tensor& x, bool train) {
  const auto drop = weft::partial(weft::core::dropout, "rate"_kw = 0.1f, "deterministic"_kw = !train);
  (void)drop("deterministic"_kw = true, s, x);
}

int main() {}
