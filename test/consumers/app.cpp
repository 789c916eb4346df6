// A program that uses weft the way a user's project does (an installed package or a meson
// subproject): one Dense layer, initialised and applied, checked against its closed form.
#include <cstdio>

#include "weft/weft.hpp"

int main() {
  using namespace weft;
  const nn::Dense dense{.features = 3, .kernel_init = core::initializers::ones()};
  const Tensor x = ones(Shape{2, 4});
  const Tensor y = nn::apply(dense, nn::init(dense, Key(0), x), x);  // 4 ones summed, zero bias
  const bool ok = y.shape() == Shape{2, 3} && y.to_vector() == std::vector<float>(6, 4.0f);
  std::printf("weft consumer: y has shape %s, %s\n", y.shape().str().c_str(), ok ? "as expected" : "WRONG");
  return ok ? 0 : 1;
}
