// An MLP from partially applied pure functions: the functional core in a few lines.
//
// A layer is a pure function whose hyperparameters come first; weft::partial fixes them, so the
// same function serves init (which creates the parameters) and apply (which reads them).
#include <iostream>

#include "weft/core/linear.hpp"
#include "weft/partial.hpp"
#include "weft/weft.hpp"

using namespace weft;

Tensor mlp(int hidden, int out, core::Scope& s, const Tensor& x) {
  const Tensor h = relu(s.child("hidden", partial(core::dense, hidden))(x));
  return s.child("out", partial(core::dense, out))(h);
}

int main() {
  const auto model = partial(mlp, 16, 3);                            // hyperparameters fixed
  const Tensor x = uniform(Key(1), Shape{2, 8});
  const auto [y, variables] = core::init(model)(Key(0), x);          // parameters derived from the function
  std::cout << variables << "\n\n";
  std::cout << "init output:  " << y << "\n";
  std::cout << "apply output: " << core::apply(model)(variables, x) << "\n";  // pure: the same values
}
