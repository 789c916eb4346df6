// The object layer: the seed scenarios of "Dealing with Module Arguments", exactly.
#include <functional>
#include <map>
#include <sstream>

#include "reference/random_reference.inc"
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

namespace flax_twin {

// Flax's
//   class MLP(nn.Module):
//     @nn.compact
//     def __call__(self, x, train):
//       h = nn.relu(nn.Dense(8)(x))
//       h = nn.Dropout(0.5, deterministic=not train)(h)
//       return nn.Dense(2)(h)
// whose init and training output test/reference/random_reference.py computes for both layouts.
struct MLP {
  Tensor operator()(nn::Scope& s, const Tensor& x, bool train) const {
    const Tensor h = relu(s(nn::Dense{.features = 8}, x));
    return s(nn::Dense{.features = 2}, s(nn::Dropout{.rate = 0.5f, .deterministic = !train}, h));
  }
};

struct DropoutOnly {
  Tensor operator()(nn::Scope& s, const Tensor& h) const { return s(nn::Dropout{.rate = 0.5f, .deterministic = false}, h); }
};

template <class Ref>
void check_flax_twin(ThreefryLayout layout, Ref ref) {
  CAPTURE(layout);
  const auto as_vector = [](const auto& array) { return std::vector<float>(std::begin(array), std::end(array)); };
  const Tensor x(as_vector(ref.mlp_x), Shape{2, 3});
  const Variables vars = nn::init(MLP{}, Key(0, layout), x, false);
  // Initial kernels to the float rounding of the script's transcription (erf, log1p); biases zeros.
  check_close(vars.at("params/Dense_0/kernel"), as_vector(ref.mlp_dense0_kernel), Shape{3, 8}, 1e-6f, 1e-6f);
  check_close(vars.at("params/Dense_1/kernel"), as_vector(ref.mlp_dense1_kernel), Shape{8, 2}, 1e-6f, 1e-6f);
  check_close(vars.at("params/Dense_0/bias"), std::vector<float>(8, 0.0f), Shape{8}, 0.0f, 0.0f);
  const Tensor y = nn::apply(MLP{}, vars, Rngs{{"dropout", Key(1, layout)}}, x, true);
  check_close(y, as_vector(ref.mlp_train_output), Shape{2, 2}, 1e-5f, 1e-5f);
  // The mask alone, under the same path ("Dropout_0" of the root) and key: 2 where kept, else 0.
  const Tensor kept = nn::apply(DropoutOnly{}, Variables{}, Rngs{{"dropout", Key(1, layout)}}, ones(Shape{2, 8}));
  std::vector<float> expected;
  for (const std::int32_t k : ref.mlp_dropout_keep) expected.push_back(k != 0 ? 2.0f : 0.0f);
  check_close(kept, expected, Shape{2, 8}, 0.0f, 0.0f);
}

}  // namespace flax_twin

TEST_CASE("Flax's initialisation and dropout, value for value, in both threefry layouts") {
  flax_twin::check_flax_twin(ThreefryLayout::partitionable, weft_reference::partitionable{});
  flax_twin::check_flax_twin(ThreefryLayout::classic, weft_reference::classic{});
}

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

namespace seed {

// Scenario 4: a ResNet-style block receives a BatchNorm template factory, as Flax's ImageNet example
// passes `norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)`.
template <class Norm>
struct ResNetBlock {
  Norm norm;
  std::int64_t filters = 4;
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    Tensor y = s(nn::Dense{.features = filters}, x);
    y = relu(s(norm(), y));
    y = s(nn::Dense{.features = filters}, y);
    y = s(norm("scale_init"_kw = core::initializers::zeros()), y);
    Tensor residual = x;
    if (!(residual.shape() == y.shape())) {
      residual = s("conv_proj", nn::Dense{.features = filters}, residual);
      residual = s("norm_proj", norm(), residual);
    }
    return relu(residual + y);
  }
};

struct ResNet {
  Tensor operator()(nn::Scope& s, const Tensor& x, bool train) const {
    const auto norm = nn::partial<nn::BatchNorm>("use_running_average"_kw = !train, "momentum"_kw = 0.9f,
                                                 "epsilon"_kw = 1e-5f);
    return s(ResNetBlock<std::remove_const_t<decltype(norm)>>{.norm = norm}, x);
  }
};

// Scenario 5: the same architecture in compact style and in setup style.
struct CompactMLP {
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    return s("out", nn::Dense{.features = 2}, relu(s("hidden", nn::Dense{.features = 3}, x)));
  }
};
struct SetupMLP {
  nn::Dense hidden{.features = 3};
  nn::Dense out{.features = 2};
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(out, relu(s(hidden, x))); }
};

struct Twice {
  nn::Dense dense{.features = 4};
  Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(dense, s(dense, t)); }
};

}  // namespace seed

WEFT_RECORD(seed::SetupMLP, hidden, out);
WEFT_RECORD(seed::Twice, dense);

TEST_CASE("seed 4: BatchNorm's use_running_average as attribute or call argument, and its statistics") {
  const Tensor x({1.f, 2.f, 3.f, 4.f, 2.f, 6.f}, Shape{3, 2});  // batch mean (2, 4), biased var (2/3, 8/3)
  struct Train {
    nn::BatchNorm bn;
    std::optional<bool> at_call;
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return at_call ? s(bn, t, *at_call) : s(bn, t); }
  };
  const Train attr{.bn = nn::BatchNorm{.use_running_average = false, .momentum = 0.9f}, .at_call = std::nullopt};
  const Train call{.bn = nn::BatchNorm{.momentum = 0.9f}, .at_call = false};
  auto [y0, vars] = nn::init_with_output(attr, Key(0), x);
  check_close(vars.at("batch_stats/BatchNorm_0/mean"), {0, 0}, Shape{2});  // not updated during init
  check_close(vars.at("batch_stats/BatchNorm_0/var"), {1, 1}, Shape{2});
  check_close(mean(y0, 0), {0, 0}, Shape{2}, 1e-6f);
  check_close(var(y0, 0), {1, 1}, Shape{2}, 1e-3f, 1e-3f);  // epsilon = 1e-5 shifts it a little
  for (const Train& m : {attr, call}) {
    auto [y, updated] = nn::apply(m, vars, nn::Mutable{"batch_stats"}, x);
    check_close(updated.at("batch_stats/BatchNorm_0/mean"), {0.2f, 0.4f}, Shape{2}, 1e-6f);
    check_close(updated.at("batch_stats/BatchNorm_0/var"), {0.9f + 0.1f * 2.f / 3.f, 0.9f + 0.1f * 8.f / 3.f}, Shape{2},
                1e-6f);
    CHECK(updated.collections() == std::vector<std::string>{"batch_stats"});
  }
  // Training without batch_stats mutable: the error names the variable and the collection.
  check_throws_with<Error>([&] { (void)nn::apply(call, vars, x); },
                           {"\"mean\"", "\"/BatchNorm_0\"", "collection \"batch_stats\" is immutable"});
  // Eval without the batch_stats collection: the error says it is empty.
  const Train eval{.bn = nn::BatchNorm{.momentum = 0.9f}, .at_call = true};
  check_throws_with<KeyError>([&] { (void)nn::apply(eval, vars.collection("params"), x); },
                              {"collection \"batch_stats\"", "\"/BatchNorm_0\"", "the collection is empty"});
  check_close(nn::apply(eval, vars, x), x / std::sqrt(1.0f + 1e-5f));  // running stats: mean 0, var 1
  // Both given, neither given.
  const Train both{.bn = nn::BatchNorm{.use_running_average = true}, .at_call = true};
  check_throws_with<nn::MergeParamError>([&] { (void)nn::apply(both, vars, x); },
                                         {"\"use_running_average\" was passed to the constructor and at call time"});
  const Train neither{.bn = nn::BatchNorm{}, .at_call = std::nullopt};
  check_throws_with<nn::MergeParamError>([&] { (void)nn::apply(neither, vars, x); },
                                         {"\"use_running_average\" must be passed"});
}

TEST_CASE("seed 4: a ResNet block with a norm template, train and eval") {
  const Tensor x = pattern(Shape{6, 3});
  const seed::ResNet model;
  const Variables vars = nn::init(model, Key(0), x, true);
  const std::string b = "/ResNetBlock_0/";
  for (const char* p : {"Dense_0/kernel", "Dense_1/kernel", "conv_proj/kernel", "BatchNorm_0/scale", "BatchNorm_1/bias",
                        "norm_proj/scale"})
    CHECK(vars.contains("params" + b + p));
  CHECK(vars.contains("batch_stats" + b + "BatchNorm_1/mean"));
  CHECK(vars.contains("batch_stats" + b + "norm_proj/var"));
  // The template's extra attribute reached the second norm only: its scale starts at zero.
  check_close(vars.at("params" + b + "BatchNorm_1/scale"), {0, 0, 0, 0}, Shape{4});
  check_close(vars.at("params" + b + "BatchNorm_0/scale"), {1, 1, 1, 1}, Shape{4});
  // Train updates every BatchNorm's statistics with momentum 0.9; eval reads them and changes nothing.
  auto [y, stats] = nn::apply(model, vars, nn::Mutable{"batch_stats"}, x, true);
  CHECK(stats.size() == 6);
  CHECK(sum(abs(stats.at("batch_stats" + b + "BatchNorm_0/mean"))).item() > 0.0f);
  const Tensor eval_out = nn::apply(model, vars.merge(stats), x, false);
  CHECK(eval_out.shape() == Shape{6, 4});
  CHECK_THROWS_AS((void)nn::apply(model, vars, x, true), Error);  // train needs batch_stats mutable
}

TEST_CASE("seed 5: a compact model and its setup-style twin have the same variables, path by path") {
  const Tensor x = pattern(Shape{2, 4});
  const Variables compact = nn::init(seed::CompactMLP{}, Key(0), x);
  const Variables setup = nn::init(seed::SetupMLP{}, Key(0), x);
  CHECK(compact.paths() == setup.paths());
  CHECK(compact.paths() == std::vector<std::string>{"params/hidden/bias", "params/hidden/kernel", "params/out/bias",
                                                    "params/out/kernel"});
  for (const auto& p : compact.paths()) check_close(setup.at(p), compact.at(p), 0.0f, 0.0f);  // same keys: same values
  check_close(nn::apply(seed::SetupMLP{}, compact, x), nn::apply(seed::CompactMLP{}, setup, x), 0.0f, 0.0f);
  // Calling a field twice shares its variables (one scope, named after the field)...
  CHECK(nn::init(seed::Twice{}, Key(0), ones(Shape{1, 4})).paths() ==
        std::vector<std::string>{"params/dense/bias", "params/dense/kernel"});
  // ...which needs the field names: without WEFT_RECORD each call is named like a temporary.
  struct Unreflected {
    nn::Dense dense{.features = 4};
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(dense, s(dense, t)); }
  };
  CHECK(nn::init(Unreflected{}, Key(0), ones(Shape{1, 4})).paths() ==
        std::vector<std::string>{"params/Dense_0/bias", "params/Dense_0/kernel", "params/Dense_1/bias",
                                 "params/Dense_1/kernel"});
  // Two explicit names that clash are an error naming the name and the parent.
  struct Clash {
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      return s("same", nn::Dense{.features = 2}, s("same", nn::Dense{.features = 2}, t));
    }
  };
  check_throws_with<ValueError>([] { (void)nn::init(Clash{}, Key(0), ones(Shape{1, 2})); },
                                {"\"same\"", "Clash at \"/\"", "Name in use"});
}

namespace seed {

// Linen's list attributes: `self.layers = [nn.Dense(3), nn.Dense(2)]` in setup names the children
// layers_0, layers_1; `self.layers[0]` called twice is one child with one set of parameters.
struct ListMLP {
  std::vector<nn::Dense> layers{nn::Dense{.features = 3}, nn::Dense{.features = 2}};
  Tensor operator()(nn::Scope& s, Tensor x) const {
    for (const auto& layer : layers) x = s(layer, x);
    return x;
  }
};
struct Tied {
  std::vector<nn::Dense> layers{nn::Dense{.features = 4}, nn::Dense{.features = 2}};
  Tensor operator()(nn::Scope& s, const Tensor& x) const { return s(layers[1], s(layers[0], s(layers[0], x))); }
};
struct Sequences {
  std::array<nn::Dense, 2> pair{nn::Dense{.features = 2}, nn::Dense{.features = 2}};
  std::tuple<nn::Dense, nn::LayerNorm> mixed{nn::Dense{.features = 2}, nn::LayerNorm{}};
  std::vector<std::vector<nn::Dense>> nested{{nn::Dense{.features = 2}},
                                             {nn::Dense{.features = 2}, nn::Dense{.features = 2}}};
  Tensor operator()(nn::Scope& s, Tensor x) const {
    x = s(pair[1], s(pair[0], x));
    x = s(std::get<1>(mixed), s(std::get<0>(mixed), x));
    return s(nested[1][1], s(nested[0][0], x));
  }
};

}  // namespace seed

WEFT_RECORD(seed::ListMLP, layers);
WEFT_RECORD(seed::Tied, layers);
WEFT_RECORD(seed::Sequences, pair, mixed, nested);

TEST_CASE("a sequence field's sub-modules are layers_0, layers_1, ... (Linen's list attributes)") {
  const Tensor x = pattern(Shape{2, 4});
  const Variables v = nn::init(seed::ListMLP{}, Key(0), x);
  CHECK(v.paths() == std::vector<std::string>{"params/layers_0/bias", "params/layers_0/kernel", "params/layers_1/bias",
                                              "params/layers_1/kernel"});
  CHECK(v.at("params/layers_0/kernel").shape() == Shape{4, 3});
  CHECK(v.at("params/layers_1/kernel").shape() == Shape{3, 2});
  const Tensor h = matmul(x, v.at("params/layers_0/kernel")) + v.at("params/layers_0/bias");
  check_close(nn::apply(seed::ListMLP{}, v, x),
              matmul(h, v.at("params/layers_1/kernel")) + v.at("params/layers_1/bias"));
  // std::array, std::tuple and nested sequences name their elements the same way.
  const Variables w = nn::init(seed::Sequences{}, Key(0), x);
  CHECK(w.paths() == std::vector<std::string>{"params/mixed_0/bias", "params/mixed_0/kernel",
                                              "params/mixed_1/bias", "params/mixed_1/scale",
                                              "params/nested_0_0/bias", "params/nested_0_0/kernel",
                                              "params/nested_1_1/bias", "params/nested_1_1/kernel",
                                              "params/pair_0/bias", "params/pair_0/kernel",
                                              "params/pair_1/bias", "params/pair_1/kernel"});
}

TEST_CASE("a sub-module called twice shares one child and one set of parameters (weight tying)") {
  const Tensor x = pattern(Shape{3, 4});
  const Variables v = nn::init(seed::Tied{}, Key(0), x);
  CHECK(v.paths() == std::vector<std::string>{"params/layers_0/bias", "params/layers_0/kernel", "params/layers_1/bias",
                                              "params/layers_1/kernel"});
  auto dense = [&](const Tensor& t, const std::string& p) {
    return matmul(t, v.at("params/" + p + "/kernel")) + v.at("params/" + p + "/bias");
  };
  check_close(nn::apply(seed::Tied{}, v, x), dense(dense(dense(x, "layers_0"), "layers_0"), "layers_1"));
  // A module value bound to a name and called again shares too; a different module under that
  // name is an error, and so is a second temporary (it cannot be the same module).
  struct NamedTwice {
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      const nn::Dense shared{.features = 4};
      return s("shared", shared, s("shared", shared, t));
    }
  };
  const Variables n = nn::init(NamedTwice{}, Key(0), x);
  CHECK(n.paths() == std::vector<std::string>{"params/shared/bias", "params/shared/kernel"});
  const Tensor once = matmul(x, n.at("params/shared/kernel")) + n.at("params/shared/bias");
  check_close(nn::apply(NamedTwice{}, n, x), matmul(once, n.at("params/shared/kernel")) + n.at("params/shared/bias"));
  struct TwoUnderOneName {
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      const nn::Dense a{.features = 4}, b{.features = 4};
      return s("same", b, s("same", a, t));
    }
  };
  check_throws_with<ValueError>([&] { (void)nn::init(TwoUnderOneName{}, Key(0), x); },
                                {"submodule \"same\"", "TwoUnderOneName at \"/\"", "Name in use"});
}

// A suggested form as the text an error message quotes, and the same form compiled and run: a
// message that contains the text names API that exists and works.
#define WEFT_SUGGESTION(...) \
  std::pair<std::string, std::function<void()>> { #__VA_ARGS__, [&] { (void)(__VA_ARGS__); } }

TEST_CASE("every how-to-fix in a scope or module error names real API, and each suggested form runs") {
  const Tensor x = pattern(Shape{4, 3});
  const Key key(7);
  auto check_suggestions = [](const std::function<void()>& failing,
                              std::initializer_list<std::pair<std::string, std::function<void()>>> suggestions) {
    std::string message;
    try {
      failing();
    } catch (const Error& e) {
      message = e.what();
    }
    INFO(message);
    for (const auto& [text, run] : suggestions) {
      CHECK(message.find(text) != std::string::npos);
      CHECK_NOTHROW(run());
    }
  };
  {  // Training BatchNorm with batch_stats immutable.
    struct Model {
      Tensor operator()(nn::Scope& s, const Tensor& t) const {
        return s(nn::BatchNorm{.use_running_average = false}, t);
      }
    };
    const Model model;
    const Variables variables = nn::init(model, Key(0), x);
    auto f = [](core::Scope& s, const Tensor& t) {
      return s.child("BatchNorm_0", partial(core::batch_norm, "use_running_average"_kw = false))(t);
    };
    check_suggestions([&] { (void)nn::apply(model, variables, x); },
                      {WEFT_SUGGESTION(nn::apply(model, variables, nn::Mutable{"batch_stats"}, x)),
                       WEFT_SUGGESTION(core::apply(f, {"batch_stats"})(variables, x))});
    check_suggestions([&] { (void)core::apply(f)(variables, x); },
                      {WEFT_SUGGESTION(core::apply(f, {"batch_stats"})(variables, x))});
  }
  {  // Dropout in training without a dropout key.
    struct Model {
      Tensor operator()(nn::Scope& s, const Tensor& t) const {
        return s(nn::Dropout{.rate = 0.5f, .deterministic = false}, t);
      }
    };
    const Model model;
    const Variables variables;
    auto f = [](core::Scope& s, const Tensor& t) {
      return s.child("Dropout_0", partial(core::dropout, "rate"_kw = 0.5f, "deterministic"_kw = false))(t);
    };
    check_suggestions([&] { (void)nn::apply(model, variables, x); },
                      {WEFT_SUGGESTION(nn::apply(model, variables, Rngs{{"dropout", key}}, x)),
                       WEFT_SUGGESTION(core::apply(f)(variables, Rngs{{"dropout", key}}, x))});
  }
  {  // An empty initializer, and a float condition for where.
    check_suggestions([&] { (void)core::Initializer()(key, Shape{2}); },
                      {WEFT_SUGGESTION(core::initializers::zeros())});
    const Tensor a = ones(Shape{4, 3}), b = zeros(Shape{4, 3});
    check_suggestions([&] { (void)where(x, a, b); }, {WEFT_SUGGESTION(weft::where(x > 0.0f, a, b))});
  }
}

TEST_CASE("nn::partial and nn::clone on weft's modules") {
  const auto dense = nn::partial<nn::Dense>("use_bias"_kw = false);
  const nn::Dense d = dense("features"_kw = 3);
  CHECK(d.features == 3);
  CHECK_FALSE(d.use_bias);
  const nn::Dense e = nn::clone(d, "features"_kw = 5);
  CHECK(e.features == 5);
  CHECK_FALSE(e.use_bias);
  CHECK(d.features == 3);  // the original is unchanged
  const Variables v = nn::init(e, Key(0), ones(Shape{1, 2}));
  CHECK(v.paths() == std::vector<std::string>{"params/kernel"});
  const nn::Dropout drop = nn::clone(nn::Dropout{.rate = 0.1f}, "deterministic"_kw = true);
  CHECK(drop.deterministic == std::optional<bool>(true));
}

#include "weft/nn/sequential.hpp"
#include "weft/nn/tabulate.hpp"

TEST_CASE("nn::Sequential names its modules layers_N and chains outputs") {
  const auto model = nn::sequential(nn::Dense{.features = 3}, [](const Tensor& t) { return relu(t); },
                                    nn::Dense{.features = 1});
  const Tensor x = pattern(Shape{2, 4});
  const Variables v = nn::init(model, Key(0), x);
  CHECK(v.paths() == std::vector<std::string>{"params/layers_0/bias", "params/layers_0/kernel", "params/layers_2/bias",
                                              "params/layers_2/kernel"});
  const Tensor expected = matmul(relu(matmul(x, v.at("params/layers_0/kernel")) + v.at("params/layers_0/bias")),
                                 v.at("params/layers_2/kernel")) +
                          v.at("params/layers_2/bias");
  check_close(nn::apply(model, v, x), expected);
}

TEST_CASE("nn::tabulate lists each module call with shapes and parameter counts") {
  const seed::ResidualModel model{.drop_rate = 0.1f};
  const std::string table = nn::tabulate(model, Key(0), ones(Shape{4, 8}), false);
  INFO(table);
  CHECK(table.find("/ResidualBlock_3/Dense_0") != std::string::npos);
  CHECK(table.find("ResidualModel") != std::string::npos);
  CHECK(table.find("/ResidualBlock_0/dropout | Dropout") != std::string::npos);
  CHECK(table.find("72 (288 B)") != std::string::npos);   // 8x8 kernel + 8 bias per Dense
  CHECK(table.find("720 (2.8 KB)") != std::string::npos);  // ten of them
  CHECK(table.find("(4, 8)") != std::string::npos);
}

#include "weft/nn/attention.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/recurrent.hpp"

TEST_CASE("MultiHeadDotProductAttention merges deterministic only when dropout_rate > 0 (as Linen)") {
  const Tensor x = pattern(Shape{2, 3, 8});
  struct NoDropout {
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::SelfAttention{.num_heads = 2}, t); }
  };
  const Variables v = nn::init(NoDropout{}, Key(0), x);  // no deterministic anywhere: fine without dropout
  CHECK(v.contains("params/SelfAttention_0/query/kernel"));
  CHECK(v.at("params/SelfAttention_0/query/kernel").shape() == Shape{8, 2, 4});
  struct WithDropout {
    std::optional<bool> det;
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      return s(nn::MultiHeadDotProductAttention{.num_heads = 2, .dropout_rate = 0.5f}, t, Tensor{}, Tensor{}, det);
    }
  };
  check_throws_with<nn::MergeParamError>([&] { (void)nn::init(WithDropout{}, Key(0), x); },
                                         {"\"deterministic\" must be passed"});
  const Variables w = nn::init(WithDropout{true}, Key(0), x);
  const Tensor eval1 = nn::apply(WithDropout{true}, w, Rngs{{"dropout", Key(1)}}, x);
  const Tensor eval2 = nn::apply(WithDropout{true}, w, Rngs{{"dropout", Key(2)}}, x);
  CHECK(eval1.to_vector() == eval2.to_vector());
  const Tensor train1 = nn::apply(WithDropout{false}, w, Rngs{{"dropout", Key(1)}}, x);
  CHECK(train1.to_vector() != eval1.to_vector());
}

namespace {

// The parameter counts of a table's rows, summed per collection column, and its Total row.
struct TableSums {
  std::map<std::string, std::int64_t> rows, total;
};
TableSums table_sums(const std::string& table) {
  std::vector<std::vector<std::string>> cells;
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("-+-") != std::string::npos) continue;  // a rule
    std::vector<std::string> row;
    std::istringstream cols(line + " ");  // trailing blanks are trimmed from the table's lines
    for (std::string cell; std::getline(cols, cell, '|');) {
      const auto first = cell.find_first_not_of(' ');
      row.push_back(first == std::string::npos ? "" : cell.substr(first, cell.find_last_not_of(' ') + 1 - first));
    }
    cells.push_back(row);
  }
  TableSums sums;
  const auto& header = cells.front();
  for (std::size_t r = 1; r < cells.size(); ++r)
    for (std::size_t c = 4; c < header.size(); ++c) {
      const std::string cell = c < cells[r].size() ? cells[r][c] : "";
      const std::int64_t n = cell.empty() ? 0 : std::stoll(cell.substr(0, cell.find(' ')));
      (r + 1 == cells.size() ? sums.total : sums.rows)[header[c]] += n;
    }
  return sums;
}

std::map<std::string, std::int64_t> counts_per_collection(const Variables& v) {
  std::map<std::string, std::int64_t> counts;
  for (const auto& [path, value] : v.leaves()) counts[path.substr(0, path.find('/'))] += value.size();
  return counts;
}

template <class M, class... Args>
void check_rows_add_up(const M& model, const Args&... args) {
  const std::string table = nn::tabulate(model, Key(0), args...);
  INFO(table);
  const TableSums sums = table_sums(table);
  const auto expected = counts_per_collection(nn::init(model, Key(0), args...));
  CHECK(sums.rows == expected);
  CHECK(sums.total == expected);
}

template <class L>
struct One {  // a layer as the only sub-module of a model
  L layer;
  template <class... A>
  Tensor operator()(nn::Scope& s, const Tensor& x, A... a) const {
    return s(layer, x, a...);
  }
};

}  // namespace

namespace seed {
// Two Transformer encoder blocks (Linen's tutorial shape): attention, norms and an MLP.
struct EncoderBlock {
  nn::SelfAttention attention{.num_heads = 4};
  nn::LayerNorm norm1{}, norm2{};
  nn::Dense hidden{.features = 64}, out{.features = 32};
  Tensor operator()(nn::Scope& s, const Tensor& x) const {
    const Tensor h = x + s(attention, s(norm1, x));
    return h + s(out, relu(s(hidden, s(norm2, h))));
  }
};
}  // namespace seed
WEFT_RECORD(seed::EncoderBlock, attention, norm1, norm2, hidden, out);

TEST_CASE("nn::tabulate: every variable is in exactly one row, and the rows add up to the total") {
  const Tensor seq = pattern(Shape{2, 5, 32});
  const auto encoder = nn::sequential(seed::EncoderBlock{}, seed::EncoderBlock{});
  const std::string table = nn::tabulate(encoder, Key(0), seq);
  INFO(table);
  // Per block: attention 4 * (32 * 32 + 32), two norms 2 * 64, MLP 32 * 64 + 64 + 64 * 32 + 32.
  CHECK(table.find("4224 (16.5 KB)") != std::string::npos);  // the attention row owns query/key/value/out
  CHECK(table.find("17088 (66.8 KB)") != std::string::npos);  // the total: 2 * (4224 + 128 + 2112 + 2080)
  check_rows_add_up(encoder, seq);
  const Tensor x = pattern(Shape{2, 6});
  const Tensor img = pattern(Shape{2, 5, 5, 3});
  check_rows_add_up(One<nn::Dense>{{.features = 3}}, x);
  check_rows_add_up(One<nn::DenseGeneral>{{.features = {2, 3}}}, x);
  check_rows_add_up(One<nn::Embed>{{.num_embeddings = 7, .features = 3}}, Tensor({1, 4, 6}, Shape{3}));
  check_rows_add_up(One<nn::Conv>{{.features = 4, .kernel_size = {3, 3}}}, img);
  check_rows_add_up(One<nn::LayerNorm>{}, x);
  check_rows_add_up(One<nn::BatchNorm>{{.use_running_average = false}}, x);
  check_rows_add_up(One<nn::GroupNorm>{{.num_groups = 3}}, x);
  check_rows_add_up(One<nn::RMSNorm>{}, x);
  check_rows_add_up(One<nn::Conv>{{.features = 4, .kernel_size = {3}}}, seq);
  check_rows_add_up(One<nn::ConvTranspose>{{.features = 4, .kernel_size = {3}, .strides = {2}}}, seq);
  check_rows_add_up(One<nn::Einsum>{{.shape = {6, 2, 3}, .einsum_str = "ab,bcd->acd"}}, x);
  // A cell called at every step in the same scope: its parameters are counted once.
  check_rows_add_up(One<nn::RNN<nn::LSTMCell>>{{.cell = {.features = 3}}}, seq);
  check_rows_add_up(One<nn::Bidirectional<nn::RNN<nn::GRUCell>>>{{.forward_rnn = {.cell = {.features = 3}},
                                                                   .backward_rnn = {.cell = {.features = 2}}}},
                    seq);
  check_rows_add_up(One<nn::Dropout>{{.rate = 0.5f, .deterministic = true}}, x);
  check_rows_add_up(One<nn::MultiHeadDotProductAttention>{{.num_heads = 2}}, seq);
  check_rows_add_up(One<nn::SelfAttention>{{.num_heads = 2, .qkv_features = 8, .out_features = 4}}, seq);
  check_rows_add_up(nn::sequential(nn::Dense{.features = 4}, nn::BatchNorm{.use_running_average = false}), x);
}

TEST_CASE("nn modules delegate to the core function of their layer: same variables, same output") {
  const Tensor img = pattern(Shape{2, 6, 6, 4});
  struct ViaNn {
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      Tensor y = s(nn::Conv{.features = 4, .kernel_size = {3, 3}}, t);
      y = s(nn::GroupNorm{.num_groups = 2}, y);
      y = s(nn::RMSNorm{.feature_axes = {1, 2}}, y);
      return s(nn::DenseGeneral{.features = {2, 3}}, y);
    }
  };
  auto via_core = [](core::Scope& s, const Tensor& t) {
    Tensor y = s.child("Conv_0", partial(core::conv, 4, std::vector<std::int64_t>{3, 3}))(t);
    y = s.child("GroupNorm_0", [](core::Scope& c, const Tensor& u) {
      return core::group_norm(core::GroupNormOptions{.num_groups = 2}, c, u);
    })(y);
    y = s.child("RMSNorm_0", partial(core::rms_norm, "feature_axes"_kw = std::vector<int>{1, 2}))(y);
    return s.child("DenseGeneral_0", partial(core::dense_general, std::vector<std::int64_t>{2, 3}))(y);
  };
  const auto [out_nn, vars_nn] = nn::init_with_output(ViaNn{}, Key(4), img);
  const auto [out_core, vars_core] = core::init(via_core)(Key(4), img);
  CHECK(vars_nn.paths() == vars_core.paths());
  check_close(out_nn, out_core, 0.0f, 0.0f);
  const Tensor ids({0, 3, 1}, Shape{3});
  struct Lookup {
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::Embed{.num_embeddings = 4, .features = 2}, t); }
  };
  const auto [rows, table] = nn::init_with_output(Lookup{}, Key(0), ids);
  const Tensor e = table.at("params/Embed_0/embedding");
  check_close(rows, take(e, ids), 0.0f, 0.0f);
}

// ---------------------------------------------------------------- Linen features

TEST_CASE("call-time keyword arguments for modules equal the positional call") {
  const Tensor x = pattern(Shape{2, 4, 8});
  const Tensor mask = core::make_causal_mask(4);
  struct ByKeyword {
    Tensor mask;
    Tensor operator()(nn::Scope& s, const Tensor& t) const {
      return s(nn::SelfAttention{.num_heads = 2}, t, "mask"_kw = mask);
    }
  };
  struct ByPosition {
    Tensor mask;
    Tensor operator()(nn::Scope& s, const Tensor& t) const { return s(nn::SelfAttention{.num_heads = 2}, t, mask); }
  };
  const Variables v = nn::init(ByKeyword{mask}, Key(0), x);
  CHECK(v.paths() == nn::init(ByPosition{mask}, Key(0), x).paths());
  const Tensor masked = nn::apply(ByKeyword{mask}, v, x);
  check_close(masked, nn::apply(ByPosition{mask}, v, x), 0.0f, 0.0f);
  CHECK(masked.to_vector() != nn::apply(ByKeyword{Tensor{}}, v, x).to_vector());  // the mask was used
  // Cross-attention by keyword, with dropout and its flag by keyword too.
  struct Cross {
    Tensor operator()(nn::Scope& s, const Tensor& q, const Tensor& kv, bool train) const {
      return s(nn::MultiHeadDotProductAttention{.num_heads = 2, .dropout_rate = 0.5f}, q, "inputs_kv"_kw = kv,
               "deterministic"_kw = !train, "dropout_rng"_kw = Key(9));
    }
  };
  struct CrossPositional {
    Tensor operator()(nn::Scope& s, const Tensor& q, const Tensor& kv, bool train) const {
      return s(nn::MultiHeadDotProductAttention{.num_heads = 2, .dropout_rate = 0.5f}, q, kv, Tensor{},
               std::optional<bool>(!train), std::optional<Key>(Key(9)));
    }
  };
  const Tensor kv = pattern(Shape{2, 3, 8});
  const Variables w = nn::init(Cross{}, Key(0), x, kv, false);
  for (bool train : {false, true})
    check_close(nn::apply(Cross{}, w, x, kv, train), nn::apply(CrossPositional{}, w, x, kv, train), 0.0f, 0.0f);
  // The root module takes them through nn::apply, as Linen's model.apply(variables, x, deterministic=True).
  const Tensor y = ones(Shape{16});
  check_close(nn::apply(nn::Dropout{.rate = 0.5f}, Variables{}, y, "deterministic"_kw = true), y);
  check_close(nn::apply(nn::Dropout{.rate = 0.5f}, Variables{}, y, "deterministic"_kw = false, "rng"_kw = Key(3)),
              nn::apply(nn::Dropout{.rate = 0.5f}, Variables{}, y, false, std::optional<Key>(Key(3))), 0.0f, 0.0f);
  // The exactly-once rule holds for keywords as for positional call arguments.
  check_throws_with<nn::MergeParamError>(
      [&] {
        (void)nn::apply(nn::Dropout{.rate = 0.5f, .deterministic = true}, Variables{}, y, "deterministic"_kw = true);
      },
      {"Parameter \"deterministic\" was passed to the constructor and at call time"});
}

TEST_CASE("nn::Sequential forwards call-time keywords to every layer that takes them (Flax issue #3017)") {
  const Tensor x = pattern(Shape{6, 4});
  const auto model = nn::sequential(nn::Dense{.features = 5}, nn::Dropout{.rate = 0.5f},
                                    nn::BatchNorm{.momentum = 0.9f}, nn::Dense{.features = 2});
  const Variables v = nn::init(model, Key(0), x, "deterministic"_kw = true, "use_running_average"_kw = false);
  CHECK(v.paths() == std::vector<std::string>{"batch_stats/layers_2/mean", "batch_stats/layers_2/var",
                                              "params/layers_0/bias", "params/layers_0/kernel",
                                              "params/layers_2/bias", "params/layers_2/scale",
                                              "params/layers_3/bias", "params/layers_3/kernel"});
  // Eval: no dropout, running statistics (mean 0, var 1 after init).
  const Tensor h = matmul(x, v.at("params/layers_0/kernel")) + v.at("params/layers_0/bias");
  const Tensor n = h / std::sqrt(1.0f + 1e-5f) * v.at("params/layers_2/scale") + v.at("params/layers_2/bias");
  check_close(nn::apply(model, v, x, "deterministic"_kw = true, "use_running_average"_kw = true),
              matmul(n, v.at("params/layers_3/kernel")) + v.at("params/layers_3/bias"), 1e-5f, 1e-5f);
  // Train: dropout draws and batch statistics update; the keywords reached layers 1 and 2.
  auto [train, stats] = nn::apply(model, v, Rngs{{"dropout", Key(1)}}, nn::Mutable{"batch_stats"}, x,
                                  "deterministic"_kw = false, "use_running_average"_kw = false);
  CHECK(train.shape() == Shape{6, 2});
  CHECK(stats.at("batch_stats/layers_2/mean").to_vector() != v.at("batch_stats/layers_2/mean").to_vector());
  const Tensor eval_again = nn::apply(model, v, Rngs{{"dropout", Key(1)}}, x, "deterministic"_kw = true,
                                      "use_running_average"_kw = true);
  CHECK(train.to_vector() != eval_again.to_vector());
  // A nested Sequential passes them on.
  const auto nested = nn::sequential(nn::sequential(nn::Dropout{.rate = 0.5f}), nn::Dense{.features = 2});
  const Variables nv = nn::init(nested, Key(0), x, "deterministic"_kw = true);
  check_close(nn::apply(nested, nv, x, "deterministic"_kw = true),
              matmul(x, nv.at("params/layers_1/kernel")) + nv.at("params/layers_1/bias"));
}

namespace seed {
struct Sower {
  Tensor operator()(nn::Scope& s, const Tensor& t) const {
    const Tensor h = s(nn::Dense{.features = 3}, t);
    s.sow("intermediates", "h", h);
    s.sow("intermediates", "h", h * 2.0f);  // a second value appends, as Linen's default reduce_fn
    return relu(h);
  }
};
// Weight tying through Embed.attend, as Linen's `self.embed.attend(h)`.
struct TiedEmbed {
  nn::Embed embed{.num_embeddings = 5, .features = 3};
  Tensor operator()(nn::Scope& s, const Tensor& ids) const {
    return s.method(embed, &nn::Embed::attend, s(embed, ids));
  }
};
}  // namespace seed
WEFT_RECORD(seed::TiedEmbed, embed);

TEST_CASE("sow and capture_intermediates fill the intermediates collection, as Linen") {
  const Tensor x = pattern(Shape{2, 4});
  const Variables v = nn::init(seed::Sower{}, Key(0), x);
  CHECK(v.collections() == std::vector<std::string>{"params"});  // init leaves intermediates out
  const Tensor h = matmul(x, v.at("params/Dense_0/kernel")) + v.at("params/Dense_0/bias");
  check_close(nn::apply(seed::Sower{}, v, x), relu(h));  // immutable: sow does nothing
  auto [y, state] = nn::apply(seed::Sower{}, v, nn::Mutable{"intermediates"}, x);
  CHECK(state.paths() == std::vector<std::string>{"intermediates/h/0", "intermediates/h/1"});
  check_close(state.at("intermediates/h/0"), h);
  check_close(state.at("intermediates/h/1"), h * 2.0f);
  auto [y2, captured] = nn::apply(seed::Sower{}, v, nn::CaptureIntermediates{}, nn::Mutable{"intermediates"}, x);
  CHECK(captured.paths() == std::vector<std::string>{"intermediates/Dense_0/__call__/0", "intermediates/__call__/0",
                                                     "intermediates/h/0", "intermediates/h/1"});
  check_close(captured.at("intermediates/Dense_0/__call__/0"), h);
  check_close(captured.at("intermediates/__call__/0"), y2);
  check_throws_with<ValueError>(
      [&] {
        (void)nn::apply([](nn::Scope& s, const Tensor& t) { return s.sow("params", "p", t), t; }, v,
                        nn::Mutable::all(), x);
      },
      {"cannot sow into the \"params\" collection"});
}

TEST_CASE("nn::bind: a module bound to variables runs its call and its methods; streams and state persist") {
  const Tensor x = pattern(Shape{2, 4});
  const Variables v = nn::init(seed::SetupMLP{}, Key(0), x);
  auto bound = nn::bind(seed::SetupMLP{}, v);
  check_close(bound(x), nn::apply(seed::SetupMLP{}, v, x), 0.0f, 0.0f);
  CHECK(bound.variables().paths() == v.paths());
  // Any function of the module and its scope: here only its hidden layer (Linen's bound.hidden(x)).
  const auto hidden_only = [](const seed::SetupMLP& m, nn::Scope& s, const Tensor& t) { return s(m.hidden, t); };
  const Tensor hidden = bound.method(hidden_only, x);
  check_close(hidden, matmul(x, v.at("params/hidden/kernel")) + v.at("params/hidden/bias"));
  // Random streams: each call draws afresh, and a fresh binding repeats the draws.
  const Tensor ones16 = ones(Shape{16});
  auto drop = nn::bind(nn::Dropout{.rate = 0.5f, .deterministic = false}, Variables{}, Rngs{{"dropout", Key(1)}});
  const Tensor a = drop(ones16), b = drop(ones16);
  CHECK(a.to_vector() != b.to_vector());
  auto again = nn::bind(nn::Dropout{.rate = 0.5f, .deterministic = false}, Variables{}, Rngs{{"dropout", Key(1)}});
  CHECK(again(ones16).to_vector() == a.to_vector());
  // Mutable collections keep their updates from call to call.
  const nn::BatchNorm bn{.use_running_average = false, .momentum = 0.5f};
  auto stats = nn::bind(bn, nn::init(bn, Key(0), x), nn::Mutable{"batch_stats"});
  (void)stats(x);
  const Tensor once = stats.variables().at("batch_stats/mean");
  (void)stats(x);
  check_close(once, mean(x, 0) * 0.5f, 1e-6f, 1e-6f);
  check_close(stats.variables().at("batch_stats/mean"), mean(x, 0) * 0.75f, 1e-6f, 1e-6f);
  // Embed.attend on a bound Embed, and through the scope of a parent's field.
  const nn::Embed embed{.num_embeddings = 5, .features = 3};
  const Variables ev = nn::init(embed, Key(0), Tensor({1, 4}, Shape{2}));
  const Tensor query = pattern(Shape{2, 3});
  const Tensor table = ev.at("params/embedding");
  check_close(nn::bind(embed, ev).method(&nn::Embed::attend, query), matmul(query, transpose(table, {1, 0})));
  const Tensor ids({0, 3}, Shape{2});
  const Variables tv = nn::init(seed::TiedEmbed{}, Key(0), ids);
  CHECK(tv.paths() == std::vector<std::string>{"params/embed/embedding"});
  const Tensor e = tv.at("params/embed/embedding");
  check_close(nn::apply(seed::TiedEmbed{}, tv, ids), matmul(take(e, ids), transpose(e, {1, 0})));
}

TEST_CASE("nn::Einsum: einsum_str as attribute or call keyword, exactly once (Flax test_einsum_str_arg)") {
  const Tensor x = pattern(Shape{3, 4, 5});
  const nn::Einsum fixed{.shape = {5, 6, 7}, .einsum_str = "abc,cde->abde"};
  const Variables v = nn::init(fixed, Key(0), x);  // not a structured binding: the lambdas below capture it
  const Tensor y = nn::apply(fixed, v, x);
  CHECK(v.paths() == std::vector<std::string>{"params/bias", "params/kernel"});
  const nn::Einsum deferred{.shape = {5, 6, 7}};
  check_close(nn::apply(deferred, v, x, "einsum_str"_kw = std::string("abc,cde->abde")), y, 0.0f, 0.0f);
  check_close(nn::apply(fixed, v, x), core::apply(partial(core::einsum, core::EinsumOptions{.shape = {5, 6, 7},
                                                                                          .einsum_str = "abc,cde->abde"}))(v, x),
              0.0f, 0.0f);
  check_throws_with<nn::MergeParamError>(
      [&] { (void)nn::apply(fixed, v, x, "einsum_str"_kw = std::string("abc,cde->abde")); },
      {"Parameter \"einsum_str\" was passed to the constructor and at call time. Should be passed just once."});
  check_throws_with<nn::MergeParamError>([&] { (void)nn::apply(deferred, v, x); },
                                         {"Parameter \"einsum_str\" must be passed to the constructor or at call time."});
}
