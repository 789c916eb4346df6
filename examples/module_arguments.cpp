// "Dealing with Module Arguments" in weft: attributes versus call-time arguments, merge_param, and
// module templates handed down to sub-modules, ending with the tabulate table of the model.
#include <iostream>

#include "weft/nn/linear.hpp"
#include "weft/nn/partial.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/nn/tabulate.hpp"
#include "weft/weft.hpp"

using namespace weft;
using namespace weft::literals;

// The Dropout template arrives with `deterministic` already fixed: the block never sees `train`.
struct ResidualBlock {
  nn::Dropout dropout;
  std::int64_t features = 32;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const Tensor h = relu(s(nn::Dense{.features = features}, x));
    return x + s(dropout, h);
  }
};

struct ResidualModel {
  float drop_rate;
  Tensor operator()(nn::Scope& s, Tensor x, bool train) const {
    const auto dropout = nn::Dropout{.rate = drop_rate, .deterministic = !train};  // a module template
    for (int i = 0; i < 10; ++i) x = s(ResidualBlock{.dropout = dropout}, x);
    return x;
  }
};

// Setup style: the sub-module is a field; its `deterministic` is left unset and given per call.
struct SomeModule {
  float drop_rate;
  nn::Dropout dropout{.rate = drop_rate};
  Tensor operator()(nn::Scope& s, const Tensor& x, bool train) const { return s(dropout, x, /*deterministic=*/!train); }
};

WEFT_RECORD(ResidualBlock, dropout, features);
WEFT_RECORD(ResidualModel, drop_rate);
WEFT_RECORD(SomeModule, drop_rate, dropout);

int main() {
  const Tensor x = uniform(Key(1), Shape{4, 32});

  std::cout << "1. A Dropout template fixed to !train, passed down to ten residual blocks\n";
  const ResidualModel model{.drop_rate = 0.1f};
  const Variables vars = nn::init(model, Key(0), x, /*train=*/false);
  const Tensor eval = nn::apply(model, vars, x, false);  // no dropout rng needed in eval
  const Tensor train = nn::apply(model, vars, Rngs{{"dropout", Key(2)}}, x, true);
  std::cout << "   eval == eval: " << (eval.to_vector() == nn::apply(model, vars, x, false).to_vector())
            << ", train differs from eval: " << (train.to_vector() != eval.to_vector()) << "\n\n";

  std::cout << "2. Setup style: deterministic given at call time\n";
  const SomeModule some{.drop_rate = 0.5f};
  std::cout << "   " << nn::apply(some, Variables{}, Rngs{{"dropout", Key(3)}}, ones(Shape{8}), true) << "\n\n";

  std::cout << "3. Given twice, or not at all: merge_param names the property\n";
  try {
    (void)nn::apply(SomeModule{.drop_rate = 0.5f, .dropout = {.rate = 0.5f, .deterministic = true}}, Variables{}, x, true);
  } catch (const nn::MergeParamError& e) {
    std::cout << "   " << e.what() << "\n";
  }
  try {
    struct Bare {
      Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::Dropout{.rate = 0.5f}, t); }
    };
    (void)nn::apply(Bare{}, Variables{}, x);
  } catch (const nn::MergeParamError& e) {
    std::cout << "   " << e.what() << "\n\n";
  }

  std::cout << "4. Templates of modules whose attributes are not all known yet\n";
  const auto dense = nn::partial<nn::Dense>("use_bias"_kw = false);  // functools.partial(nn.Dense, use_bias=False)
  const nn::Dense d64 = dense("features"_kw = 64);
  std::cout << "   features=" << d64.features.value() << " use_bias=" << d64.use_bias
            << "; clone with features=8: " << nn::clone(d64, "features"_kw = 8).features.value() << "\n\n";

  std::cout << "5. The model's table\n" << nn::tabulate(model, Key(0), x, false);
}
