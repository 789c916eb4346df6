// Positive control for the object layer: complete records, call-time keywords, keywords through
// nn::Sequential, sow, nn::bind and Embed.attend, done right. It must compile with zero warnings.
// expect: compiles
#include "weft/nn.hpp"

using namespace weft;
using namespace weft::literals;

struct Block {
  nn::SelfAttention attention{.num_heads = 2, .dropout_rate = 0.1f};
  std::vector<nn::Dense> layers{nn::Dense{.features = 4}};
  nn::Embed embed{.num_embeddings = 4, .features = 4};
  Tensor operator()(nn::Scope& s, const Tensor& x, const Tensor& mask, bool train) const {
    const Tensor h = s(attention, x, "mask"_kw = mask, "deterministic"_kw = !train);
    s.sow("intermediates", "h", h);
    return s.method(embed, &nn::Embed::attend, s(layers[0], h));
  }
};
WEFT_RECORD(Block, attention, layers, embed);

int main() {
  const Tensor x;
  const Variables v = nn::init(Block{}, Key(0), x, x, false);
  auto bound = nn::bind(Block{}, v, Rngs{{"dropout", Key(1)}});
  const auto model = nn::sequential(nn::Dense{.features = 2}, nn::Dropout{.rate = 0.1f}, nn::BatchNorm{});
  const Tensor y = nn::apply(model, v, x, "deterministic"_kw = true, "use_running_average"_kw = true);
  return static_cast<int>(bound(x, x, false).size() + y.size());
}
