// Models written as functional-core functions (Flax's tests/core/design): an MLP, an auto-encoder,
// a small CNN with batch norm and a transformer block, each defined once and run through init and
// apply, with the exact parameter tree.
#include <string>
#include <utility>
#include <vector>

#include "testing.hpp"
#include "weft/core.hpp"
#include "weft/partial.hpp"

using namespace weft;
using namespace weft::literals;
using weft::testing::check_close;
using weft::testing::pattern;

namespace {

// The seed scenario's MLP: hyperparameters first, then the scope, then the input.
Tensor mlp(int hidden, int out, core::Scope& s, const Tensor& x) {
  const Tensor h = core::relu(s.child("hidden", partial(core::dense, hidden))(x));
  return s.child("out", partial(core::dense, out))(h);
}

// flax tests/core/design/core_auto_encoder_test.py: a hyperparameter struct whose methods are layer
// functions.
struct AutoEncoder {
  int latents;
  int features;
  int hidden;

  Tensor operator()(core::Scope& s, const Tensor& x) const { return decode(s, encode(s, x)); }
  Tensor encode(core::Scope& s, const Tensor& x) const { return s.child("encoder", partial(mlp, hidden, latents))(x); }
  Tensor decode(core::Scope& s, const Tensor& z) const { return s.child("decoder", partial(mlp, hidden, features))(z); }
};

std::vector<std::pair<std::string, Shape>> shapes_of(const Variables& v) {
  std::vector<std::pair<std::string, Shape>> out;
  for (const auto& [path, t] : v.leaves()) out.emplace_back(path, t.shape());
  return out;
}

using Tree = std::vector<std::pair<std::string, Shape>>;

}  // namespace

TEST_CASE("an MLP defined once: init creates the tree that apply reads") {
  const auto model = partial(mlp, 3, 2);  // hyperparameters fixed
  const Tensor x = pattern(Shape{4, 5});
  auto [y, variables] = core::init(model)(Key(0), x);
  CHECK(shapes_of(variables) == Tree{{"params/hidden/bias", Shape{3}},
                                     {"params/hidden/kernel", Shape{5, 3}},
                                     {"params/out/bias", Shape{2}},
                                     {"params/out/kernel", Shape{3, 2}}});
  CHECK(y.shape() == Shape{4, 2});
  check_close(core::apply(model)(variables, x), y, 0.0f, 0.0f);
  // The output is the formula over the stored parameters.
  const Tensor h = relu(matmul(x, variables.at("params/hidden/kernel")) + variables.at("params/hidden/bias"));
  check_close(y, matmul(h, variables.at("params/out/kernel")) + variables.at("params/out/bias"));
  // Other keys give other parameters; the same key the same ones.
  CHECK(core::init(model)(Key(0), x).second.at("params/out/kernel").to_vector() ==
        variables.at("params/out/kernel").to_vector());
  CHECK_FALSE(core::init(model)(Key(1), x).second.at("params/out/kernel").to_vector() ==
              variables.at("params/out/kernel").to_vector());
}

TEST_CASE("the auto-encoder of Flax's design tests: parameter shapes, apply, and one method alone") {
  const AutoEncoder ae{.latents = 2, .features = 4, .hidden = 3};
  const Tensor x = ones(Shape{1, 4});
  auto [x_r, variables] = core::init(ae)(Key(0), x);
  CHECK(x_r.shape() == x.shape());
  CHECK(shapes_of(variables) == Tree{{"params/decoder/hidden/bias", Shape{3}},
                                     {"params/decoder/hidden/kernel", Shape{2, 3}},
                                     {"params/decoder/out/bias", Shape{4}},
                                     {"params/decoder/out/kernel", Shape{3, 4}},
                                     {"params/encoder/hidden/bias", Shape{3}},
                                     {"params/encoder/hidden/kernel", Shape{4, 3}},
                                     {"params/encoder/out/bias", Shape{2}},
                                     {"params/encoder/out/kernel", Shape{3, 2}}});
  check_close(core::apply(ae)(variables, x), x_r, 0.0f, 0.0f);
  // A method applied on its own reads only its part of the tree (Flax's apply(AutoEncoder.encode)).
  const Tensor z = core::apply([&](core::Scope& s, const Tensor& t) { return ae.encode(s, t); })(variables, x);
  CHECK(z.shape() == Shape{1, 2});
  const Tensor decoded = core::apply([&](core::Scope& s, const Tensor& t) { return ae.decode(s, t); })(variables, z);
  check_close(decoded, x_r, 0.0f, 0.0f);
  // The encoder's parameters alone suffice for encode.
  CHECK(core::apply([&](core::Scope& s, const Tensor& t) { return ae.encode(s, t); })(
            variables.subtree("params/encoder"), x)
            .to_vector() == z.to_vector());
}

namespace {

// conv -> batch_norm -> relu -> max_pool -> dense, with a train switch.
Tensor small_cnn(bool train, core::Scope& s, const Tensor& x) {
  Tensor h = s.child("conv", partial(core::conv, 4, std::vector<std::int64_t>{3, 3}))(x);
  h = s.child("bn", partial(core::batch_norm, "use_running_average"_kw = !train, "momentum"_kw = 0.9f))(h);
  h = core::max_pool(core::relu(h), {2, 2}, {2, 2});
  h = reshape(h, Shape{h.shape()[0], h.shape()[1] * h.shape()[2] * h.shape()[3]});
  h = s.child("drop", partial(core::dropout, "rate"_kw = 0.5f, "deterministic"_kw = !train))(h);
  return s.child("head", partial(core::dense, 3))(h);
}

// A pre-norm transformer encoder block.
Tensor encoder_block(bool train, core::Scope& s, const Tensor& x, const Tensor& mask) {
  const core::MultiHeadDotProductAttentionOptions attention{
      .num_heads = 2, .dropout_rate = 0.1f, .deterministic = !train};
  Tensor h = s.child("ln1", partial(core::layer_norm, core::LayerNormOptions{}))(x);
  h = s.child("attention", partial(core::multi_head_dot_product_attention, attention))(h, Tensor{}, mask);
  const Tensor x1 = x + h;
  h = s.child("ln2", partial(core::layer_norm, core::LayerNormOptions{}))(x1);
  h = core::gelu(s.child("mlp_in", partial(core::dense, 16))(h));
  h = s.child("mlp_out", partial(core::dense, x.shape()[x.rank() - 1]))(h);
  return x1 + s.child("drop", partial(core::dropout, "rate"_kw = 0.1f, "deterministic"_kw = !train))(h);
}

}  // namespace

TEST_CASE("a small CNN: batch_stats update in training, eval is deterministic, gradients reach every parameter") {
  const Tensor x = pattern(Shape{2, 6, 6, 1});
  const core::Rngs rngs{{"params", Key(0)}, {"dropout", Key(1)}};
  auto [y, variables] = core::init(partial(small_cnn, true))(rngs, x);
  CHECK(y.shape() == Shape{2, 3});
  CHECK(shapes_of(variables) == Tree{{"batch_stats/bn/mean", Shape{4}},
                                     {"batch_stats/bn/var", Shape{4}},
                                     {"params/bn/bias", Shape{4}},
                                     {"params/bn/scale", Shape{4}},
                                     {"params/conv/bias", Shape{4}},
                                     {"params/conv/kernel", Shape{3, 3, 1, 4}},
                                     {"params/head/bias", Shape{3}},
                                     {"params/head/kernel", Shape{36, 3}}});
  auto [y_train, stats] = core::apply(partial(small_cnn, true), "batch_stats")(variables, rngs, x);
  CHECK(stats.paths() == std::vector<std::string>{"batch_stats/bn/mean", "batch_stats/bn/var"});
  CHECK_FALSE(stats.at("batch_stats/bn/mean").to_vector() == variables.at("batch_stats/bn/mean").to_vector());
  const Variables trained = variables.merge(stats);
  const Tensor e1 = core::apply(partial(small_cnn, false))(trained, x);
  const Tensor e2 = core::apply(partial(small_cnn, false))(trained, core::Rngs{{"dropout", Key(7)}}, x);
  CHECK(e1.to_vector() == e2.to_vector());
  // value_and_grad over the variables: a gradient for every parameter, none for batch_stats.
  const Tensor target = pattern(Shape{2, 3}, -1.0f, 1.0f, 5);
  auto loss = [&](const Variables& v) {
    auto [out, new_stats] = core::apply(partial(small_cnn, true), "batch_stats")(v, rngs, x);
    return std::pair{mean(square(out - target)), new_stats};
  };
  const auto result = value_and_grad_with_aux(loss)(variables);
  CHECK(result.grad.paths() == variables.collection("params").paths());
  for (const auto& [path, g] : result.grad.leaves()) {
    CAPTURE(path);
    bool nonzero = false;
    for (float v : g.to_vector()) nonzero = nonzero || v != 0.0f;
    CHECK(nonzero);
  }
  CHECK(result.aux.paths() == stats.paths());
}

TEST_CASE("a transformer encoder block: parameter tree, train versus eval, causal masking") {
  const Tensor x = pattern(Shape{2, 4, 6});
  const Tensor mask = core::make_causal_mask(4);
  const core::Rngs rngs{{"params", Key(0)}, {"dropout", Key(1)}};
  auto [y, variables] = core::init(partial(encoder_block, false))(rngs, x, mask);
  CHECK(y.shape() == x.shape());
  CHECK(shapes_of(variables) == Tree{{"params/attention/key/bias", Shape{2, 3}},
                                     {"params/attention/key/kernel", Shape{6, 2, 3}},
                                     {"params/attention/out/bias", Shape{6}},
                                     {"params/attention/out/kernel", Shape{2, 3, 6}},
                                     {"params/attention/query/bias", Shape{2, 3}},
                                     {"params/attention/query/kernel", Shape{6, 2, 3}},
                                     {"params/attention/value/bias", Shape{2, 3}},
                                     {"params/attention/value/kernel", Shape{6, 2, 3}},
                                     {"params/ln1/bias", Shape{6}},
                                     {"params/ln1/scale", Shape{6}},
                                     {"params/ln2/bias", Shape{6}},
                                     {"params/ln2/scale", Shape{6}},
                                     {"params/mlp_in/bias", Shape{16}},
                                     {"params/mlp_in/kernel", Shape{6, 16}},
                                     {"params/mlp_out/bias", Shape{6}},
                                     {"params/mlp_out/kernel", Shape{16, 6}}});
  const Tensor eval = core::apply(partial(encoder_block, false))(variables, x, mask);
  check_close(eval, y, 0.0f, 0.0f);
  // Training draws dropout masks from the "dropout" stream: other keys, other outputs.
  const Tensor t1 = core::apply(partial(encoder_block, true))(variables, rngs, x, mask);
  const Tensor t2 = core::apply(partial(encoder_block, true))(variables, core::Rngs{{"dropout", Key(2)}}, x, mask);
  CHECK_FALSE(t1.to_vector() == eval.to_vector());
  CHECK_FALSE(t1.to_vector() == t2.to_vector());
  CHECK(t1.to_vector() == core::apply(partial(encoder_block, true))(variables, rngs, x, mask).to_vector());
  // Causal: the first position's output ignores later positions.
  std::vector<float> changed = x.to_vector();
  for (std::size_t i = 6; i < 24; ++i) changed[i] = -changed[i];
  const Tensor e2 = core::apply(partial(encoder_block, false))(variables, Tensor(changed, x.shape()), mask);
  check_close(slice_axis(e2, 1, 0, 1), slice_axis(eval, 1, 0, 1), 1e-6f, 1e-5f);
}
