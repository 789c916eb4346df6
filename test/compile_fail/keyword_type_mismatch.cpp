// A keyword's value does not convert to its field's type.
// expect-error: WEFT_KEYWORD_TYPE_MISMATCH
// expect-error: {"rate"}
// expect-output: {"rate"}, const char
#include "common.hpp"

int main() {
  auto drop = weft::partial(dropout, "rate"_kw = "high");
  (void)drop;
}
