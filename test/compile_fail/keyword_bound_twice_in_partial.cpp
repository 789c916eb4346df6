// The same keyword twice in one partial application.
// expect-error: WEFT_KEYWORD_BOUND_TWICE
// expect-error: {"rate"}
// expect-output: {"rate"}, DropoutOptions>
#include "common.hpp"

int main() {
  auto drop = weft::partial(dropout, "rate"_kw = 0.1f, "deterministic"_kw = true, "rate"_kw = 0.2f);
  (void)drop;
}
