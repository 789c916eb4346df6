#include <iostream>

#include <weft/weft.hpp>
using namespace weft;

// A layer is a pure function: hyperparameters first, then the scope, then inputs.
Tensor mlp(int hidden, int out, core::Scope& s, const Tensor& x) {
  const Tensor h = relu(s.child("hidden", partial(core::dense, hidden))(x));
  return s.child("out", partial(core::dense, out))(h);
}

int main() {
  const auto model = partial(mlp, 512, 10);                 // hyperparameters fixed
  const Tensor x = uniform(Key(1), Shape{4, 784});
  auto [y, variables] = core::init(model)(Key(0), x);       // parameters derived from the function
  std::cout << variables << "\n";                           // the parameter tree
  std::cout << core::apply(model)(variables, x) << "\n";    // the same output as y, from pure apply
}
