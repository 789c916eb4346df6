// Positive control: every use that the other snippets get wrong, done right. It must compile
// with zero warnings, so a failure elsewhere is the misuse and not the set-up.
// expect: compiles
#include "common.hpp"

int main() {
  Scope scope;
  auto drop = weft::partial(dropout, "rate"_kw = 0.1f);
  float y = drop("deterministic"_kw = true, scope, 1.0f);
  auto drop2 = weft::partial(dropout, "rate"_kw = 0.1f, "deterministic"_kw = false);
  y += drop2(scope, 1.0f);
  std::int64_t z = weft::partial(dense, "features"_kw = 4)(2);
  DenseOptions o{.features = 3};
  auto dense_template = weft::nn::partial<Dense>("use_bias"_kw = false);
  Dense d = dense_template("features"_kw = 64);
  Dense e = weft::nn::clone(d, "features"_kw = 32);
  return static_cast<int>(y) + static_cast<int>(z + o.features + e.features);
}
