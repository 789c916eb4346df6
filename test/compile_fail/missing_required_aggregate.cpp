// A required field left out of aggregate initialisation: required<T>'s default constructor is
// explicit, so `{}` cannot initialise it.
// expect-error: explicit
// expect-output: weft::required<long int> || field 'features'
#include "common.hpp"

int main() {
  DenseOptions o{};
  return o.use_bias;
}
