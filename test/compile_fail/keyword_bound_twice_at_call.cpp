// A keyword bound at partial application and again at the call (Flax's merge_param: "passed
// to the constructor and at call time").
// expect-error: WEFT_KEYWORD_BOUND_TWICE
// expect-error: {"rate"}
// expect-output: {"rate"}, DropoutOptions>
#include "common.hpp"

int main() {
  Scope scope;
  auto drop = weft::partial(dropout, "rate"_kw = 0.1f);
  return static_cast<int>(drop("rate"_kw = 0.2f, scope, 1.0f));
}
