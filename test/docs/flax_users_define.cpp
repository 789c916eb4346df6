#include <iostream>

#include <weft/weft.hpp>
using namespace weft;

struct MLP {
  std::int64_t hidden = 128;
  std::int64_t out = 10;
  nn::Dropout dropout;  // a module template: its rate (and perhaps deterministic) fixed by the parent
  Tensor operator()(nn::Scope& s, const Tensor& x, bool train) const {
    Tensor h = relu(s(nn::Dense{.features = hidden}, x));   // Dense_0
    h = s(nn::BatchNorm{}, h, "use_running_average"_kw = !train);  // BatchNorm_0
    h = s(dropout, h, "deterministic"_kw = !train);               // the field: "dropout"
    return s(nn::Dense{.features = out}, h);                 // Dense_1
  }
};
WEFT_RECORD(MLP, hidden, out, dropout);

int main() {
  const MLP model{.dropout = nn::Dropout{.rate = 0.1f}};
  const Tensor x = uniform(Key(1), Shape{4, 784});
  const Variables variables = nn::init(model, Key(0), x, /*train=*/false);
  std::cout << nn::tabulate(model, Key(0), x, false);
  // Evaluation: no rng, batch statistics read only.
  const Tensor logits = nn::apply(model, variables, x, false);
  // Training: a dropout stream, and batch_stats mutable (returned beside the output).
  auto [train_logits, updates] =
      nn::apply(model, variables, Rngs{{"dropout", Key(2)}}, nn::Mutable{"batch_stats"}, x, true);
  std::cout << "logits " << logits.shape() << ", updated " << updates.paths().size() << " batch statistics\n";
}
