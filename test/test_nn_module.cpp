// The object layer: the seed scenarios of "Dealing with Module Arguments", exactly.
#include "testing.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/partial.hpp"
#include "weft/nn/stochastic.hpp"

using namespace weft;
using namespace weft::literals;
using weft::testing::check_close;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace seed {

// Scenario 1: the Dropout template is fixed to !train by the top module and handed to the blocks.
struct ResidualBlock {
  nn::Dropout dropout;
  std::int64_t features = 8;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    auto h = relu(s(nn::Dense{.features = features}, x));
    return x + s(dropout, h);
  }
};

struct ResidualModel {
  float drop_rate;
  Tensor operator()(nn::Scope& s, Tensor x, bool train) const {
    const auto dropout = nn::Dropout{.rate = drop_rate, .deterministic = !train};
    for (int i = 0; i < 10; ++i) x = s(ResidualBlock{.dropout = dropout}, x);
    return x;
  }
};

// Scenario 2: setup style; the attribute is left unset and the call argument fills it.
struct SomeModule {
  float drop_rate;
  nn::Dropout dropout{.rate = drop_rate};
  Tensor operator()(nn::Scope& s, const Tensor& x, bool train) const { return s(dropout, x, /*deterministic=*/!train); }
};

// Scenario 3: a user module with its own merged property.
struct MyDropout {
  float rate;
  std::optional<bool> deterministic{};
  Tensor operator()(nn::Scope& s, const Tensor& x, std::optional<bool> deterministic = std::nullopt) const {
    const bool det = nn::merge_param("deterministic", this->deterministic, deterministic);
    if (det) return x;
    const Tensor keep = bernoulli(s.make_rng("dropout"), 1.0f - rate, x.shape());
    return where(keep, x / (1.0f - rate), zeros(Shape{}));
  }
};

}  // namespace seed

WEFT_RECORD(seed::ResidualBlock, dropout, features);
WEFT_RECORD(seed::ResidualModel, drop_rate);
WEFT_RECORD(seed::SomeModule, drop_rate, dropout);
WEFT_RECORD(seed::MyDropout, rate, deterministic);

TEST_CASE("seed 1: ResidualModel passes a Dropout template fixed to !train down to ten blocks") {
  const seed::ResidualModel model{.drop_rate = 0.5f};
  const Tensor x = pattern(Shape{4, 8});
  const Variables vars = nn::init(model, Key(0), x, /*train=*/false);
  // Compact naming: ResidualBlock_0..9, each with Dense_0; the dropout field adds no variables.
  CHECK(vars.size() == 20);
  CHECK(vars.contains("params/ResidualBlock_0/Dense_0/kernel"));
  CHECK(vars.contains("params/ResidualBlock_9/Dense_0/bias"));

  // Eval: exactly the dropout-free computation, and no dropout rng is needed.
  Tensor expected = x;
  for (int i = 0; i < 10; ++i) {
    const std::string p = "params/ResidualBlock_" + std::to_string(i) + "/Dense_0/";
    expected = expected + relu(matmul(expected, vars.at(p + "kernel")) + vars.at(p + "bias"));
  }
  check_close(nn::apply(model, vars, x, false), expected, 1e-5f, 1e-5f);

  // Train: outputs change with the dropout key and are reproducible with the same key.
  const Tensor a = nn::apply(model, vars, Rngs{{"dropout", Key(1)}}, x, true);
  const Tensor b = nn::apply(model, vars, Rngs{{"dropout", Key(1)}}, x, true);
  const Tensor c = nn::apply(model, vars, Rngs{{"dropout", Key(2)}}, x, true);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
  CHECK(a.to_vector() != expected.to_vector());
  // Train without any rng: the error names the module path and the stream.
  check_throws_with<Error>([&] { (void)nn::apply(model, vars, x, true); },
                           {"dropout needs PRNG for \"dropout\"", "/ResidualBlock_0/dropout"});
}

TEST_CASE("seed 2: setup style, deterministic given at call time") {
  const seed::SomeModule m{.drop_rate = 0.5f};
  const Tensor x = ones(Shape{64});
  const Variables vars = nn::init(m, Key(0), x, false);
  CHECK(vars.empty());
  check_close(nn::apply(m, vars, x, false), x);  // eval: identity
  const Tensor y = nn::apply(m, vars, Rngs{{"dropout", Key(3)}}, x, true);
  for (float v : y.to_vector()) CHECK((v == 0.0f || v == 2.0f));
  CHECK(sum(y).item() != 64.0f);
  // The setup-style field is named after the field: its mask is the stream of scope "/dropout".
  Key drawn(0);
  auto expected_key = [&](core::Scope& s, const Tensor& t) {
    drawn = s.child("dropout", [](core::Scope& c, const Tensor&) { return c.make_rng("dropout"); })(t);
    return t;
  };
  (void)core::apply(expected_key)(Variables{}, Rngs{{"dropout", Key(3)}}, x);
  check_close(y, where(bernoulli(drawn, 0.5f, x.shape()), x / 0.5f, zeros(Shape{})));
  // Both the attribute and the call argument: the merge error names the property.
  const seed::SomeModule both{.drop_rate = 0.5f, .dropout = nn::Dropout{.rate = 0.5f, .deterministic = true}};
  check_throws_with<nn::MergeParamError>([&] { (void)nn::apply(both, vars, x, false); },
                                         {"Parameter \"deterministic\" was passed to the constructor and at call time"});
}

TEST_CASE("seed 3: a user module uses merge_param; both-set and neither-set raise naming the property") {
  const Tensor x = ones(Shape{16});
  struct Caller {
    seed::MyDropout drop;
    std::optional<bool> at_call;
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      return at_call ? s(drop, t, *at_call) : s(drop, t);
    }
  };
  auto run = [&](seed::MyDropout d, std::optional<bool> at_call) {
    return nn::apply(Caller{d, at_call}, Variables{}, Rngs{{"dropout", Key(0)}}, x);
  };
  check_close(run({.rate = 0.5f, .deterministic = true}, std::nullopt), x);  // attribute
  check_close(run({.rate = 0.5f}, true), x);                                 // call argument
  CHECK(run({.rate = 0.5f}, false).to_vector() != x.to_vector());            // false counts as given
  check_throws_with<nn::MergeParamError>([&] { (void)run({.rate = 0.5f, .deterministic = true}, false); },
                                         {"Parameter \"deterministic\" was passed to the constructor and at call time. "
                                          "Should be passed just once."});
  check_throws_with<nn::MergeParamError>([&] { (void)run({.rate = 0.5f}, std::nullopt); },
                                         {"Parameter \"deterministic\" must be passed to the constructor or at call time."});
  // merge_param itself: false and 0 count as set.
  CHECK(nn::merge_param<int>("n", 0, std::nullopt) == 0);
  CHECK_FALSE(nn::merge_param<bool>("b", std::nullopt, false));
  static_assert(nn::merge_param<int>("n", 3, std::nullopt) == 3);  // usable in constant expressions
}

TEST_CASE("Linen's Dropout requires the flag even at rate 0") {
  struct Wrap {
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::Dropout{.rate = 0.0f}, t); }
  };
  check_throws_with<nn::MergeParamError>([] { (void)nn::apply(Wrap{}, Variables{}, ones(Shape{2})); },
                                         {"\"deterministic\" must be passed"});
}
