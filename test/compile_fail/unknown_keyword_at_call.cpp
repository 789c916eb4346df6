// A keyword that is not a field of the record, given at the call.
// expect-error: WEFT_UNKNOWN_KEYWORD
// expect-error: {"raet"}
// expect-output: {"raet"}, DropoutOptions>
#include "common.hpp"

int main() {
  Scope scope;
  auto drop = weft::partial(dropout, "rate"_kw = 0.1f);
  return static_cast<int>(drop("raet"_kw = true, scope, 1.0f));
}
