// Keyword names are field names: a-z, 0-9 and _.
// expect-error: WEFT_BAD_KEYWORD_NAME
#include "common.hpp"

int main() {
  auto drop = weft::partial(dropout, "Rate"_kw = 0.1f);
  (void)drop;
}
