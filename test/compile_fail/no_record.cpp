// Keywords need a record to fill: a generic lambda names none.
// expect-error: WEFT_NO_RECORD
#include "common.hpp"

int main() {
  auto f = weft::partial([](const auto& options, int x) { return options.rate * x; }, "rate"_kw = 0.1f);
  (void)f;
}
