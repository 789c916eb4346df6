// A keyword that is not a field of the record: the error names the keyword and the record.
// expect-error: WEFT_UNKNOWN_KEYWORD
// expect-error: {"ratee"}
// expect-output: {"ratee"}, DropoutOptions>
#include "common.hpp"

int main() {
  auto drop = weft::partial(dropout, "ratee"_kw = 0.1f);
  (void)drop;
}
