#include <iostream>

#include <weft/weft.hpp>
using namespace weft;

struct ResidualBlock {
  nn::Dropout dropout;                        // a template: deterministic already fixed
  std::int64_t features = 256;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const Tensor h = relu(s(nn::Dense{.features = features}, x));   // child "Dense_0"
    return x + s(dropout, h);                                      // child "dropout" (the field)
  }
};
WEFT_RECORD(ResidualBlock, dropout, features);  // reflection: field names, nn::partial, nn::clone

struct ResidualModel {
  float drop_rate;
  Tensor operator()(nn::Scope& s, Tensor x, bool train) const {
    const auto dropout = nn::Dropout{.rate = drop_rate, .deterministic = !train};
    for (int i = 0; i < 10; ++i) x = s(ResidualBlock{.dropout = dropout}, x);
    return x;
  }
};

int main() {
  const ResidualModel model{.drop_rate = 0.1f};
  const Tensor x = uniform(Key(1), Shape{8, 256});
  const Variables vars = nn::init(model, Key(0), x, /*train=*/false);
  const Tensor eval = nn::apply(model, vars, x, false);                            // no rng needed
  const Tensor train = nn::apply(model, vars, Rngs{{"dropout", Key(1)}}, x, true);
  std::cout << nn::tabulate(model, Key(0), x, false);
  std::cout << "eval " << eval.shape() << ", train " << train.shape() << "\n";
}
