// core::dense, dense_general, einsum, embed and attend: Flax's semantics and defaults, against closed forms,
// explicit contractions, JAX's random streams and finite differences.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core_testing.hpp"
#include "testing.hpp"
#include "weft/core.hpp"
#include "weft/partial.hpp"

using namespace weft;
using namespace weft::literals;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;
namespace init = weft::core::initializers;
using weft::testing::kRootFirst;
using weft::testing::kDense0First;
using weft::testing::lecun_normal_values;
using weft::testing::init_and_check_apply;

// ------------------------------------------------------------------------------------------ dense

TEST_CASE("dense: ones kernel and bias on ones(1, 3) give 4 (Flax test_dense)") {
  const auto layer =
      partial(core::dense, "features"_kw = 4, "kernel_init"_kw = init::ones(), "bias_init"_kw = init::ones());
  auto [y, variables] = init_and_check_apply(layer, Key(0), ones(Shape{1, 3}));
  check_close(y, std::vector<float>(4, 4.0f), Shape{1, 4});
  CHECK(variables.paths() == std::vector<std::string>{"params/bias", "params/kernel"});
  CHECK(variables.at("params/kernel").shape() == Shape{3, 4});
}

TEST_CASE("dense: default kernel is lecun_normal under the key Flax derives for the path; bias zeros") {
  auto model = [](core::Scope& s, const Tensor& x) { return s.child("Dense_0", partial(core::dense, 4))(x); };
  const Tensor x = pattern(Shape{2, 3});
  auto [y, variables] = init_and_check_apply(model, Key(0), x);
  const Tensor kernel = variables.at("params/Dense_0/kernel");
  const Tensor expected = lecun_normal_values(fold_in(Key(0), kDense0First), Shape{3, 4}, 3.0);
  check_close(kernel, expected, 0.0f, 0.0f);
  check_close(variables.at("params/Dense_0/bias"), std::vector<float>(4, 0.0f), Shape{4});
  check_close(y, matmul(x, kernel));
  // At the root the first key is the fold-in of sha1(b'\x01').
  auto [y_root, root_vars] = core::init(partial(core::dense, 4))(Key(0), x);
  check_close(root_vars.at("params/kernel"), lecun_normal_values(fold_in(Key(0), kRootFirst), Shape{3, 4}, 3.0), 0.0f,
              0.0f);
}

TEST_CASE("dense: leading axes are batch axes; gradients match finite differences") {
  const Tensor x = pattern(Shape{2, 3, 5});
  auto [y, variables] = init_and_check_apply(partial(core::dense, 2), Key(1), x);
  CHECK(y.shape() == Shape{2, 3, 2});
  const Tensor w = pattern(Shape{2, 3, 2}, -1.0f, 1.0f, 4);
  check_gradient([&](const Tensor& t) { return sum(core::apply(partial(core::dense, 2))(variables, t) * w); }, x);
  check_gradient(
      [&](const Tensor& k) {
        return sum(core::apply(partial(core::dense, 2))(variables.set("params/kernel", k), x) * w);
      },
      variables.at("params/kernel"));
}

TEST_CASE("dense: bad features or a scalar input are errors naming the layer") {
  check_throws_with<ValueError>(
      [] {
        (void)core::init(partial(core::dense, 0))(Key(0), ones(Shape{1, 3}));
      },
      {"core::dense", "features must be positive", "0"});
  check_throws_with<ShapeError>([] { (void)core::init(partial(core::dense, 2))(Key(0), Tensor(1.0f)); },
                                {"core::dense", "scalar"});
}

// ---------------------------------------------------------------------------------- dense_general

namespace {

// out[free..., f] = sum over the contracted index c of x[...] * kernel[c..., f] + bias[f], by loops.
// `axes` are the contracted input axes in kernel order (normalised).
Tensor dense_general_reference(const Tensor& x, const Tensor& kernel, const Tensor& bias,
                               const std::vector<int>& axes) {
  const Shape& xs = x.shape();
  const int r = xs.rank();
  std::vector<int> free;
  for (int i = 0; i < r; ++i)
    if (std::find(axes.begin(), axes.end(), i) == axes.end()) free.push_back(i);
  std::int64_t n_free = 1, n_in = 1;
  for (int a : free) n_free *= xs[a];
  for (int a : axes) n_in *= xs[a];
  const std::int64_t n_out = bias.size();
  const auto xv = x.to_vector(), kv = kernel.to_vector(), bv = bias.to_vector();
  std::vector<std::int64_t> strides(static_cast<std::size_t>(r), 1);
  for (int i = r - 2; i >= 0; --i)
    strides[static_cast<std::size_t>(i)] = strides[static_cast<std::size_t>(i + 1)] * xs[i + 1];
  std::vector<float> out(static_cast<std::size_t>(n_free * n_out));
  for (std::int64_t fi = 0; fi < n_free; ++fi) {
    std::int64_t base = 0, rem = fi;
    for (int j = static_cast<int>(free.size()) - 1; j >= 0; --j) {
      const int a = free[static_cast<std::size_t>(j)];
      base += (rem % xs[a]) * strides[static_cast<std::size_t>(a)];
      rem /= xs[a];
    }
    for (std::int64_t o = 0; o < n_out; ++o) {
      double acc = bv[static_cast<std::size_t>(o)];
      for (std::int64_t c = 0; c < n_in; ++c) {
        std::int64_t off = base, crem = c;
        for (int j = static_cast<int>(axes.size()) - 1; j >= 0; --j) {
          const int a = axes[static_cast<std::size_t>(j)];
          off += (crem % xs[a]) * strides[static_cast<std::size_t>(a)];
          crem /= xs[a];
        }
        acc += static_cast<double>(xv[static_cast<std::size_t>(off)]) * kv[static_cast<std::size_t>(c * n_out + o)];
      }
      out[static_cast<std::size_t>(fi * n_out + o)] = static_cast<float>(acc);
    }
  }
  std::vector<std::int64_t> dims;
  for (int a : free) dims.push_back(xs[a]);
  for (std::int64_t f : bias.shape()) dims.push_back(f);
  return Tensor(out, Shape(dims));
}

}  // namespace

TEST_CASE("dense_general agrees with an explicit contraction (Flax test_dense_general_vs_numpy)") {
  const Tensor x = pattern(Shape{2, 3, 4, 5});
  struct Case {
    std::vector<int> axis;
    std::vector<int> normalised;
    Shape kernel;
  };
  for (const Case& c :
       {Case{{1}, {1}, Shape{3, 6, 2}}, Case{{1, 2}, {1, 2}, Shape{3, 4, 6, 2}},
        Case{{-1, -3}, {3, 1}, Shape{5, 3, 6, 2}}, Case{{0, 1, 2, 3}, {0, 1, 2, 3}, Shape{2, 3, 4, 5, 6, 2}}}) {
    CAPTURE(c.kernel);
    const auto layer = partial(core::dense_general, "features"_kw = std::vector<std::int64_t>{6, 2}, "axis"_kw = c.axis,
                               "bias_init"_kw = init::normal(1.0f));
    auto [y, variables] = init_and_check_apply(layer, Key(2), x);
    CHECK(variables.at("params/kernel").shape() == c.kernel);
    CHECK(variables.at("params/bias").shape() == Shape{6, 2});
    check_close(y, dense_general_reference(x, variables.at("params/kernel"), variables.at("params/bias"), c.normalised),
                1e-4f, 1e-4f);
  }
}

TEST_CASE("dense_general: the initializers see the flattened 2-D shape, as Flax's") {
  const Tensor x = pattern(Shape{2, 3, 4});
  const auto layer =
      partial(core::dense_general,
              core::DenseGeneralOptions{.features = {2, 5}, .axis = {1, 2}, .bias_init = init::normal(1.0f)});
  auto [y, variables] = core::init(layer)(Key(0), x);
  // kernel (3, 4, 2, 5) drawn as (12, 10): fan_in 12, not 3 * 4 * 2 = 24 as the 4-D shape would give.
  const Tensor expected =
      reshape(lecun_normal_values(fold_in(Key(0), kRootFirst), Shape{12, 10}, 12.0), Shape{3, 4, 2, 5});
  check_close(variables.at("params/kernel"), expected, 0.0f, 0.0f);
  // The bias is drawn as (10,) with the scope's second key, then reshaped to (2, 5).
  CHECK(variables.at("params/bias").shape() == Shape{2, 5});
  const Tensor bias_draw = core::init([](core::Scope& s, const Tensor&) {
                             (void)s.make_rng();  // the kernel's key
                             return normal(s.make_rng(), Shape{10});
                           })(Key(0), x)
                               .first;
  check_close(variables.at("params/bias"), reshape(bias_draw, Shape{2, 5}), 0.0f, 0.0f);
}

TEST_CASE("dense_general: partial with features only, and its errors") {
  const Tensor x = pattern(Shape{4, 3});
  auto [y, variables] = core::init(partial(core::dense_general, std::vector<std::int64_t>{2, 2}))(Key(0), x);
  CHECK(y.shape() == Shape{4, 2, 2});
  CHECK(variables.at("params/kernel").shape() == Shape{3, 2, 2});
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::dense_general, std::vector<std::int64_t>{}))(Key(0), x); },
      {"core::dense_general", "features"});
  check_throws_with<ValueError>(
      [&] {
        (void)core::init(partial(core::dense_general, core::DenseGeneralOptions{.features = {2}, .axis = {1, -1}}))(
            Key(0), x);
      },
      {"core::dense_general", "contracted twice"});
  CHECK_THROWS_AS((void)core::init(
                      partial(core::dense_general, core::DenseGeneralOptions{.features = {2}, .axis = {2}}))(Key(0), x),
                  ShapeError);
}

// ------------------------------------------------------------------------------------------ embed

TEST_CASE("embed looks rows up and attend is query @ embedding.T (Flax test_embed)") {
  // embedding[i, :] = i
  const Tensor table = broadcast_to(reshape(arange(4), Shape{4, 1}), Shape{4, 3});
  const core::EmbedOptions options{
      .num_embeddings = 4, .features = 3, .embedding_init = [&](Key, const Shape&) { return table; }};
  const Tensor ids({0, 1, 2, 3}, Shape{1, 4});
  auto [y, variables] = init_and_check_apply(partial(core::embed, options), Key(0), ids);
  check_close(y, reshape(table, Shape{1, 4, 3}));
  CHECK(variables.paths() == std::vector<std::string>{"params/embedding"});
  const Tensor z = core::apply(partial(core::embed_attend, options))(variables, ones(Shape{3}));
  check_close(z, {0, 3, 6, 9}, Shape{4});  // 3 * arange(4)
  // Any index shape: (2, 2) indices give (2, 2, 3).
  const Tensor y2 = core::apply(partial(core::embed, options))(variables, Tensor({3, 0, 0, 2}, Shape{2, 2}));
  check_close(y2, {3, 3, 3, 0, 0, 0, 0, 0, 0, 2, 2, 2}, Shape{2, 2, 3});
}

TEST_CASE("embed: default init is normal with variance 1 / features (fan_in, out_axis 0)") {
  auto [y, variables] = core::init(partial(core::embed, 10, 8))(Key(3), Tensor({1, 7}, Shape{2}));
  const Tensor expected = normal(fold_in(Key(3), kRootFirst), Shape{10, 8}) * std::sqrt(static_cast<float>(1.0 / 8.0));
  check_close(variables.at("params/embedding"), expected, 0.0f, 0.0f);
  CHECK(y.shape() == Shape{2, 8});
}

TEST_CASE("embed: float indices and out-of-range indices are errors, not silent values") {
  const auto layer = partial(core::embed, 4, 3);
  auto [y, variables] = core::init(layer)(Key(0), Tensor({0}, Shape{1}));
  check_throws_with<DTypeError>(
      [&] {
        (void)core::apply(layer)(variables, Tensor({0.0f, 1.0f}, Shape{2}));
      },
      {"core::embed", "int32", "float32"});
  check_throws_with<ValueError>(
      [&] {
        (void)core::apply(layer)(variables, Tensor({0, 4}, Shape{2}));
      },
      {"core::embed", "num_embeddings = 4"});
  check_throws_with<ValueError>([&] { (void)core::apply(layer)(variables, Tensor({-1}, Shape{1})); }, {"core::embed"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::apply(partial(core::embed_attend, core::EmbedOptions{.num_embeddings = 4, .features = 3}))(
            variables, ones(Shape{2, 5}));
      },
      {"core::embed_attend", "features = 3"});
}

TEST_CASE("embed and embed_attend share one table when run in the same scope (tied output)") {
  const core::EmbedOptions options{.num_embeddings = 5, .features = 3};
  auto tied = [&](core::Scope& s, const Tensor& ids) {
    const Tensor h = s.child("embed", partial(core::embed, options))(ids);
    core::Scope e = s.push("embed");
    return core::embed_attend(options, e, h);
  };
  const Tensor ids({4, 1}, Shape{2});
  auto [logits, variables] = init_and_check_apply(tied, Key(0), ids);
  CHECK(variables.paths() == std::vector<std::string>{"params/embed/embedding"});
  const Tensor table = variables.at("params/embed/embedding");
  check_close(logits, matmul(take(table, ids), transpose(table)));
}

// ----------------------------------------------------------------------------------------- einsum

namespace {

/// sum over c of x[a, b, c] * k[c, d, e], by loops in double: "abc,cde->abde".
std::vector<float> abc_cde(const Tensor& x, const Tensor& k) {
  const Shape xs = x.shape(), ks = k.shape();
  const auto xv = x.to_vector(), kv = k.to_vector();
  std::vector<float> y;
  for (std::int64_t a = 0; a < xs[0]; ++a)
    for (std::int64_t b = 0; b < xs[1]; ++b)
      for (std::int64_t d = 0; d < ks[1]; ++d)
        for (std::int64_t e = 0; e < ks[2]; ++e) {
          double acc = 0;
          for (std::int64_t c = 0; c < xs[2]; ++c)
            acc += double(xv[static_cast<std::size_t>((a * xs[1] + b) * xs[2] + c)]) *
                   kv[static_cast<std::size_t>((c * ks[1] + d) * ks[2] + e)];
          y.push_back(static_cast<float>(acc));
        }
  return y;
}

}  // namespace

TEST_CASE("einsum: Flax's Einsum((5, 6, 7), 'abc,cde->abde'), its bias shape and explicit sums") {
  const Tensor x = pattern(Shape{3, 4, 5});
  const auto layer = partial(core::einsum, core::EinsumOptions{.shape = {5, 6, 7}, .einsum_str = "abc,cde->abde",
                                                               .bias_init = init::normal(1.0f)});
  const auto [y, v] = init_and_check_apply(layer, Key(3), x);
  CHECK(v.at("params/kernel").shape() == Shape{5, 6, 7});
  CHECK(v.at("params/bias").shape() == Shape{6, 7});  // the kernel's extents of d and e
  const Tensor kernel = v.at("params/kernel"), bias = v.at("params/bias");
  check_close(y, Tensor(abc_cde(x, kernel), Shape{3, 4, 6, 7}) + reshape(bias, {1, 1, 6, 7}), 1e-5f, 1e-5f);
  // The kernel is lecun_normal over its (in -2, out -1) fans, as Flax's default_kernel_init.
  check_close(kernel, lecun_normal_values(fold_in(Key(3), kRootFirst), Shape{5, 6, 7}, 5.0 * 6.0), 0.0f, 0.0f);

  // Spaces, a transposed output, a letter summed in the input alone, batch letters and "...".
  const Tensor k = pattern(Shape{5, 2}, -0.5f, 0.5f, 3);
  const auto apply_with = [&](const std::string& eq, const Tensor& kernel_value, const Tensor& input) {
    return core::apply(partial(core::einsum, core::EinsumOptions{.shape = kernel_value.shape().to_vector(),
                                                                 .einsum_str = eq, .use_bias = false}))(
        Variables::from_leaves({{"params/kernel", kernel_value}}), input);
  };
  check_close(apply_with("abc, cd -> dba", k, x), transpose(matmul(x, k), {2, 1, 0}), 1e-6f, 1e-5f);
  check_close(apply_with("abc,cd->ad", k, x), matmul(sum(x, 1), k), 1e-5f, 1e-5f);
  check_close(apply_with("...c,cd->...d", k, x), matmul(x, k), 1e-6f, 1e-5f);
  const Tensor kb = pattern(Shape{3, 5, 2}, -0.5f, 0.5f, 4);
  check_close(apply_with("abc,acd->abd", kb, x), matmul(x, kb), 1e-6f, 1e-5f);
  // Gradients (a copy of the binding: clang 14 does not capture structured bindings).
  const Variables vars = v;
  const Tensor w = pattern(Shape{3, 4, 6, 7}, -1.0f, 1.0f, 5);
  check_gradient([&](const Tensor& t) { return sum(core::apply(layer)(vars, t) * w); }, x);
  check_gradient([&](const Tensor& t) { return sum(core::apply(layer)(vars.set("params/kernel", t), x) * w); },
                 kernel);
}

TEST_CASE("einsum: Flax's errors for the equation, and weft's for shapes") {
  const Tensor x = ones(Shape{3, 4});
  auto run = [&](std::string eq, std::vector<std::int64_t> shape) {
    (void)core::init(partial(core::einsum, core::EinsumOptions{.shape = std::move(shape), .einsum_str = std::move(eq)}))(
        Key(0), x);
  };
  check_throws_with<ValueError>([&] { run("ab,bc", {4, 2}); },
                                {"core::einsum", "`einsum_str` equation must be explicit and include \"->\""});
  check_throws_with<ValueError>([&] { run("ab,bc,cd->ad", {4, 2}); },
                                {"exactly two operands and therefore, exactly one comma character, instead of 2"});
  check_throws_with<ShapeError>([&] { run("ab,bc->ac", {5, 2}); },
                                {"core::einsum", "'b'", "4 in the input (3, 4) but 5 in the kernel (5, 2)"});
  check_throws_with<ShapeError>([&] { run("abc,cd->ad", {4, 2}); }, {"input term \"abc\"", "names 3 axes", "(3, 4)"});
  check_throws_with<ValueError>([&] { run("ab,bb->ab", {4, 4}); }, {"'b' appears twice in the kernel term"});
  check_throws_with<ValueError>([&] { run("ab,bc->az", {4, 2}); }, {"output letter 'z'", "neither operand"});
  check_throws_with<ValueError>([&] { run("ab,...c->ac", {4, 2}); }, {"\"...\" in the kernel's term"});
  check_throws_with<ValueError>([&] { run("ab->ac,bc", {4, 2}); }, {"must separate the two operands before \"->\""});
  check_throws_with<ValueError>([&] { run("a1,1c->ac", {4, 2}); }, {"'1' in the input term", "not a letter"});
  check_throws_with<ValueError>([&] { run("ab,bc->ac", {4, -2}); }, {"the kernel shape (4, -2) has a negative extent"});
}
