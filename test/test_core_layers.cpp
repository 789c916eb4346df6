// The functional core's layer functions: Flax's semantics and defaults, checked against closed
// forms, hand-computed cases, JAX's random streams and finite differences.
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

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

namespace {

// Python: int.from_bytes(hashlib.sha1(data).digest()[:4], 'big'), the counter appended as its
// minimal big-endian bytes; the values below came from
//   for d in [b'\x01', b'Dense_0\x01', b'Dropout_0\x01', b'query\x01']:
//       print(d, hex(int.from_bytes(hashlib.sha1(d).digest()[:4], 'big')))
constexpr std::uint32_t kRootFirst = 0xbf8b4530u;      // sha1(b'\x01'): the root scope's first key
constexpr std::uint32_t kDense0First = 0xb2b71315u;    // sha1(b'Dense_0\x01')
constexpr std::uint32_t kDropout0First = 0xa1a37726u;  // sha1(b'Dropout_0\x01')
constexpr std::uint32_t kQueryFirst = 0x1ebc834fu;     // sha1(b'query\x01')

bool same_values(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && a.to_vector() == b.to_vector(); }

// lecun_normal's draw for a kernel whose fan_in is `fan_in`, computed as the initializer does.
Tensor lecun_normal_values(Key key, const Shape& shape, double fan_in) {
  const auto variance = static_cast<float>(1.0 / fan_in);
  return truncated_normal(key, -2.0f, 2.0f, shape) * (std::sqrt(variance) / 0.87962566103423978f);
}

// The same layer under init then apply: both outputs (the second must equal the first).
template <class F, class... Args>
std::pair<Tensor, Variables> init_and_check_apply(F f, Key key, const Args&... args) {
  auto [y, variables] = core::init(f)(key, args...);
  const Tensor y2 = core::apply(f)(variables, args...);
  CHECK(same_values(y, y2));
  return {y, variables};
}

}  // namespace

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

// ------------------------------------------------------------------------------------------- conv

TEST_CASE("conv: VALID and SAME with ones (Flax test_conv, in 2-D)") {
  const Tensor x = ones(Shape{1, 8, 8, 3});
  const auto valid =
      partial(core::conv, "features"_kw = 4, "kernel_size"_kw = std::vector<std::int64_t>{3, 3},
              "padding"_kw = Padding("VALID"), "kernel_init"_kw = init::ones(), "bias_init"_kw = init::ones());
  auto [y, variables] = init_and_check_apply(valid, Key(0), x);
  CHECK(variables.at("params/kernel").shape() == Shape{3, 3, 3, 4});
  CHECK(variables.at("params/bias").shape() == Shape{4});
  check_close(y, std::vector<float>(6 * 6 * 4, 28.0f), Shape{1, 6, 6, 4});  // 3 * 3 * 3 + 1

  const auto same = partial(
      core::conv,
      core::ConvOptions{.features = 4, .kernel_size = {3, 3}, .kernel_init = init::ones(), .bias_init = init::ones()});
  const Tensor ys = core::init(same)(Key(0), x).first;
  REQUIRE(ys.shape() == Shape{1, 8, 8, 4});
  const auto v = ys.to_vector();
  auto at = [&](int i, int j) { return v[static_cast<std::size_t>((i * 8 + j) * 4)]; };
  CHECK(at(0, 0) == 13.0f);  // corner: 2 * 2 * 3 + 1
  CHECK(at(0, 3) == 19.0f);  // edge: 2 * 3 * 3 + 1
  CHECK(at(4, 4) == 28.0f);  // interior
  CHECK(at(7, 7) == 13.0f);
}

TEST_CASE("conv: grouped convolution (Flax test_group_conv, in 2-D)") {
  const Tensor x = ones(Shape{1, 8, 8, 4});
  const auto layer = partial(core::conv, core::ConvOptions{.features = 4,
                                                           .kernel_size = {3, 3},
                                                           .padding = "VALID",
                                                           .feature_group_count = 2,
                                                           .kernel_init = init::ones(),
                                                           .bias_init = init::ones()});
  auto [y, variables] = init_and_check_apply(layer, Key(0), x);
  CHECK(variables.at("params/kernel").shape() == Shape{3, 3, 2, 4});
  check_close(y, std::vector<float>(6 * 6 * 4, 19.0f), Shape{1, 6, 6, 4});  // 3 * 3 * 2 + 1
}

TEST_CASE("conv: default lecun_normal kernel, strides and dilation reach conv2d, one image without batch") {
  const Tensor x = pattern(Shape{2, 7, 6, 3});
  const core::ConvOptions options{.features = 5, .kernel_size = {3, 2}, .strides = {2, 1}, .kernel_dilation = {1, 2}};
  auto [y, variables] = init_and_check_apply(partial(core::conv, options), Key(4), x);
  const Tensor kernel = variables.at("params/kernel");
  check_close(kernel, lecun_normal_values(fold_in(Key(4), kRootFirst), Shape{3, 2, 3, 5}, 3.0 * 2.0 * 3.0), 0.0f, 0.0f);
  check_close(y, conv2d(x, kernel, Conv2dOptions{.strides = {2, 1}, .padding = "SAME", .dilation = {1, 2}}));
  // (height, width, channels): Flax adds a batch axis and removes it again.
  const Tensor one = reshape(slice_axis(x, 0, 1, 2), Shape{7, 6, 3});
  const Tensor y1 = core::apply(partial(core::conv, options))(variables, one);
  REQUIRE(y1.shape() == Shape{4, 6, 5});
  check_close(y1, reshape(slice_axis(y, 0, 1, 2), Shape{4, 6, 5}));
  // Gradient with respect to the input.
  const Tensor w = pattern(y.shape(), -1.0f, 1.0f, 2);
  check_gradient([&](const Tensor& t) { return sum(core::apply(partial(core::conv, options))(variables, t) * w); }, x);
}

TEST_CASE("conv: bad options are errors naming the layer and the fix") {
  const Tensor x = ones(Shape{1, 5, 5, 3});
  check_throws_with<ValueError>(
      [&] {
        (void)core::init(partial(
            core::conv, core::ConvOptions{.features = 4, .kernel_size = {3, 3}, .feature_group_count = 2}))(Key(0), x);
      },
      {"core::conv", "feature_group_count 2", "input channels (3)"});
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::conv, 4, std::vector<std::int64_t>{3}))(Key(0), x); },
      {"core::conv", "kernel_size", "(3,)"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::init(partial(core::conv, 4, std::vector<std::int64_t>{3, 3}))(Key(0), ones(Shape{5, 3}));
      },
      {"core::conv", "(5, 3)"});
}

TEST_CASE("max_pool and avg_pool take Flax's (inputs, window_shape, strides, padding)") {
  const Tensor x = reshape(arange(16), Shape{1, 4, 4, 1});
  check_close(core::max_pool(x, {2, 2}, {2, 2}), {5, 7, 13, 15}, Shape{1, 2, 2, 1});
  check_close(core::avg_pool(x, {2, 2}, {2, 2}), {2.5f, 4.5f, 10.5f, 12.5f}, Shape{1, 2, 2, 1});
  CHECK(core::max_pool(x, {2, 2}).shape() == Shape{1, 3, 3, 1});  // strides default to 1
  // SAME padding: the last window sees one padded row and column.
  const Tensor with_pad = core::avg_pool(x, {2, 2}, {2, 2}, "SAME");
  CHECK(with_pad.shape() == Shape{1, 2, 2, 1});
  const Tensor small = reshape(arange(9), Shape{1, 3, 3, 1});
  check_close(core::avg_pool(small, {2, 2}, {2, 2}, "SAME"), {2.0f, 7.0f / 4.0f, 13.0f / 4.0f, 8.0f / 4.0f},
              Shape{1, 2, 2, 1});
  check_close(core::avg_pool(small, {2, 2}, {2, 2}, "SAME", /*count_include_pad=*/false), {2.0f, 3.5f, 6.5f, 8.0f},
              Shape{1, 2, 2, 1});
  // One image without a batch axis.
  check_close(core::max_pool(reshape(x, Shape{4, 4, 1}), {2, 2}, {2, 2}), {5, 7, 13, 15}, Shape{2, 2, 1});
}

// ---------------------------------------------------------------------------------------- dropout

namespace {

Tensor drop(float rate, const Tensor& x, Key key, std::vector<int> broadcast_dims = {}) {
  auto f = [&](core::Scope& s, const Tensor& t) {
    return core::dropout(core::DropoutOptions{.rate = rate, .deterministic = false, .broadcast_dims = broadcast_dims},
                         s, t, key);
  };
  return core::apply(f)(Variables{}, x);
}

}  // namespace

TEST_CASE("dropout: rate 0 and deterministic are the identity, whatever the key") {
  const Tensor x = pattern(Shape{4, 5});
  CHECK(same_values(drop(0.0f, x, Key(0)), x));
  for (std::uint64_t seed : {0u, 1u, 2u}) {
    auto f = [&](core::Scope& s, const Tensor& t) {
      return core::dropout(core::DropoutOptions{.rate = 0.5f, .deterministic = true}, s, t, Key(seed));
    };
    CHECK(same_values(core::apply(f)(Variables{}, x), x));
  }
  // Deterministic needs no rng at all.
  const auto eval = partial(core::dropout, "rate"_kw = 0.5f, "deterministic"_kw = true);
  CHECK(same_values(core::apply(eval)(Variables{}, x), x));
}

TEST_CASE("dropout: rate 1 gives zeros, with a zero gradient and no NaN (Flax test_dropout_rate_limits)") {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x({1.0f, -2.0f, inf, 3.0f}, Shape{4});
  check_close(drop(1.0f, x, Key(0)), {0, 0, 0, 0}, Shape{4}, 0.0f, 0.0f);  // zeros, also where x is infinite
  const Tensor g = grad([](const Tensor& t) { return sum(drop(1.0f, t, Key(0))); })(pattern(Shape{4}));
  check_close(g, {0, 0, 0, 0}, Shape{4}, 0.0f, 0.0f);
}

TEST_CASE("dropout: kept fraction within 4 sigma of 1 - rate, kept values scaled by 1 / (1 - rate)") {
  const Tensor x = ones(Shape{100, 100});
  for (int tenth = 1; tenth <= 9; ++tenth) {
    const float rate = 0.1f * static_cast<float>(tenth);
    CAPTURE(rate);
    const float keep = 1.0f - rate;
    std::int64_t kept = 0;
    const int trials = 10;
    for (const Key& key : split(Key(0), trials))
      for (float v : drop(rate, x, key).to_vector()) {
        if (v != 0.0f) {
          ++kept;
          CHECK(v == 1.0f / keep);
        }
      }
    const double n = 100.0 * 100.0 * trials;
    const double delta = 4.0 * std::sqrt(rate * keep) / std::sqrt(n);
    const double frac = static_cast<double>(kept) / n;
    CHECK(frac > keep - delta);
    CHECK(frac < keep + delta);
  }
}

TEST_CASE("dropout: the mask is jax.random.bernoulli(key, 1 - rate, shape), element for element") {
  const Tensor x = pattern(Shape{7, 33}, 0.5f, 2.0f);  // no zeros
  for (const float rate : {0.1f, 0.5f, 0.8f}) {
    const Key key(42);
    const auto keep_mask = bernoulli(key, 1.0f - rate, x.shape()).to_int_vector();
    const auto y = drop(rate, x, key).to_vector(), xv = x.to_vector();
    for (std::size_t i = 0; i < y.size(); ++i) {
      CHECK((y[i] != 0.0f) == (keep_mask[i] != 0));
      if (keep_mask[i]) CHECK(y[i] == xv[i] / (1.0f - rate));
    }
  }
  // Same key, same mask; different keys, different masks.
  CHECK(same_values(drop(0.5f, x, Key(1)), drop(0.5f, x, Key(1))));
  CHECK_FALSE(same_values(drop(0.5f, x, Key(1)), drop(0.5f, x, Key(2))));
}

TEST_CASE("dropout: the key is make_rng(\"dropout\") of the layer's scope, Flax's derivation") {
  const Tensor x = pattern(Shape{6, 10}, 0.5f, 2.0f);
  auto model = [](core::Scope& s, const Tensor& t) {
    return s.child("Dropout_0", partial(core::dropout, "rate"_kw = 0.5f, "deterministic"_kw = false))(t);
  };
  const Tensor y = core::apply(model)(Variables{}, core::Rngs{{"dropout", Key(9)}}, x);
  CHECK(same_values(y, drop(0.5f, x, fold_in(Key(9), kDropout0First))));
  // Different dropout streams give different masks; init with only a params key falls back to it.
  CHECK_FALSE(same_values(y, core::apply(model)(Variables{}, core::Rngs{{"dropout", Key(10)}}, x)));
  CHECK(same_values(core::init(model)(Key(9), x).first, y));
  // No rng at all: the error names the scope and the stream.
  check_throws_with<Error>([&] { (void)core::apply(model)(Variables{}, x); }, {"Dropout_0 needs PRNG for \"dropout\""});
}

TEST_CASE("dropout: broadcast_dims share one mask value along those axes (Flax test_dropout_broadcast)") {
  const Tensor x = ones(Shape{4, 5, 6});
  for (const std::vector<int>& dims : std::vector<std::vector<int>>{{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {-1}}) {
    CAPTURE(dims.size());
    const Key key(3);
    const Tensor y = drop(0.5f, x, key, dims);
    std::vector<std::int64_t> mask_dims = {4, 5, 6};
    for (int d : dims) mask_dims[static_cast<std::size_t>(d < 0 ? d + 3 : d)] = 1;
    // Each element equals the mask value of its broadcast position: slices all kept or all dropped.
    const Tensor expected =
        astype(broadcast_to(bernoulli(key, 0.5f, Shape(mask_dims)), x.shape()), DType::float32) * 2.0f;
    check_close(y, expected, 0.0f, 0.0f);
  }
}

TEST_CASE("dropout: bad rates and non-float inputs are errors") {
  for (const float rate : {-0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN()})
    check_throws_with<ValueError>([&] { (void)drop(rate, ones(Shape{2}), Key(0)); },
                                  {"core::dropout", "rate", "[0, 1]"});
  CHECK_THROWS_AS((void)drop(0.5f, Tensor({1, 2}, Shape{2}), Key(0)), DTypeError);
}

TEST_CASE("dropout: gradients with a fixed key match finite differences") {
  const Tensor x = pattern(Shape{5, 6});
  const Tensor w = pattern(Shape{5, 6}, -1.0f, 1.0f, 3);
  check_gradient([&](const Tensor& t) { return sum(drop(0.3f, t, Key(7)) * w); }, x);
  check_gradient([&](const Tensor& t) { return sum(drop(0.3f, t, Key(7), {0}) * w); }, x);
}

// ------------------------------------------------------------------------------------- layer_norm

namespace {

Tensor layer_norm_formula(const Tensor& x, const Tensor& scale, const Tensor& bias, float eps) {
  const Tensor c = x - mean(x, -1, true);
  return c * rsqrt(mean(square(c), -1, true) + eps) * scale + bias;
}

}  // namespace

TEST_CASE("layer_norm: rows of mean 0 and variance 1, then scale and bias (closed form)") {
  const Tensor x({1.0f, 2.0f, 3.0f, 4.0f, 2.0f, 4.0f, 6.0f, 8.0f}, Shape{2, 4});
  auto [y, variables] = init_and_check_apply(partial(core::layer_norm, core::LayerNormOptions{}), Key(0), x);
  CHECK(variables.paths() == std::vector<std::string>{"params/bias", "params/scale"});
  // Row 1: mean 2.5, variance 1.25; row 2: mean 5, variance 5.
  auto z = [](double v, double m, double var) { return static_cast<float>((v - m) / std::sqrt(var + 1e-6)); };
  const std::vector<float> expected = {z(1, 2.5, 1.25), z(2, 2.5, 1.25), z(3, 2.5, 1.25), z(4, 2.5, 1.25),
                                       z(2, 5, 5),      z(4, 5, 5),      z(6, 5, 5),      z(8, 5, 5)};
  check_close(y, expected, Shape{2, 4});
  const Tensor scale({1.0f, 2.0f, 3.0f, 4.0f}, Shape{4}), bias({0.5f, 0.0f, -0.5f, 1.0f}, Shape{4});
  const Variables v2 = variables.set("params/scale", scale).set("params/bias", bias);
  check_close(core::apply(partial(core::layer_norm, core::LayerNormOptions{}))(v2, x),
              reshape(Tensor(expected, Shape{2, 4}) * scale + bias, Shape{2, 4}));
  // use_scale / use_bias false: no parameters.
  auto [y3, none] = core::init(partial(core::layer_norm, "use_scale"_kw = false, "use_bias"_kw = false))(Key(0), x);
  CHECK(none.empty());
  check_close(y3, expected, Shape{2, 4});
}

TEST_CASE("layer_norm: the fused last-axis kernel equals the formula, values and gradients") {
  const Tensor x = pattern(Shape{3, 70, 9}, -2.0f, 3.0f);  // > 64 rows: several gradient chunks
  const Tensor scale = pattern(Shape{9}, 0.5f, 1.5f, 1), bias = pattern(Shape{9}, -1.0f, 1.0f, 2);
  const Tensor w = pattern(Shape{3, 70, 9}, -1.0f, 1.0f, 3);
  const auto layer = partial(core::layer_norm, core::LayerNormOptions{});
  const Variables variables = Variables::from_leaves({{"params/scale", scale}, {"params/bias", bias}});
  check_close(core::apply(layer)(variables, x), layer_norm_formula(x, scale, bias, 1e-6f), 1e-5f, 1e-4f);
  auto fused_loss = [&](const Tensor& t, const Tensor& s, const Tensor& b) {
    return sum(core::apply(layer)(Variables::from_leaves({{"params/scale", s}, {"params/bias", b}}), t) * w);
  };
  auto formula_loss = [&](const Tensor& t, const Tensor& s, const Tensor& b) {
    return sum(layer_norm_formula(t, s, b, 1e-6f) * w);
  };
  const auto g_fused = grad([&](const std::vector<Tensor>& p) { return fused_loss(p[0], p[1], p[2]); })(
      std::vector<Tensor>{x, scale, bias});
  const auto g_formula = grad([&](const std::vector<Tensor>& p) { return formula_loss(p[0], p[1], p[2]); })(
      std::vector<Tensor>{x, scale, bias});
  for (std::size_t i = 0; i < 3; ++i) check_close(g_fused[i], g_formula[i], 1e-4f, 1e-3f);
}

TEST_CASE("layer_norm: reduction over other axes (the general path)") {
  const Tensor x = pattern(Shape{2, 3, 4}, -1.0f, 2.0f);
  const auto layer = partial(core::layer_norm, "reduction_axes"_kw = std::vector<int>{1, 2}, "use_scale"_kw = false,
                             "use_bias"_kw = false);
  const Tensor y = core::init(layer)(Key(0), x).first;
  // Normalising axes (1, 2) is normalising the flattened (2, 12) rows.
  const auto flat = core::init(partial(core::layer_norm, "use_scale"_kw = false, "use_bias"_kw = false))(
                        Key(0), reshape(x, Shape{2, 12}))
                        .first;
  check_close(y, reshape(flat, Shape{2, 3, 4}), 1e-5f, 1e-4f);
}

TEST_CASE("layer_norm: gradients with respect to x, scale and bias match finite differences") {
  const Tensor x = pattern(Shape{3, 5}, -1.0f, 2.0f);
  const Tensor w = pattern(Shape{3, 5}, -1.0f, 1.0f, 5);
  const auto layer = partial(core::layer_norm, core::LayerNormOptions{});
  const Variables variables = core::init(layer)(Key(0), x)
                                  .second.set("params/scale", pattern(Shape{5}, 0.5f, 1.5f, 1))
                                  .set("params/bias", pattern(Shape{5}, -1.0f, 1.0f, 2));
  check_gradient([&](const Tensor& t) { return sum(core::apply(layer)(variables, t) * w); }, x);
  for (const char* p : {"params/scale", "params/bias"})
    check_gradient([&](const Tensor& t) { return sum(core::apply(layer)(variables.set(p, t), x) * w); },
                   variables.at(p));
  // The general path too.
  const auto general = partial(core::layer_norm, "reduction_axes"_kw = std::vector<int>{0, 1});
  check_gradient([&](const Tensor& t) { return sum(core::apply(general)(variables, t) * w); }, x);
}

// ------------------------------------------------------------------------------------- batch_norm

namespace {

Tensor biased_var(const Tensor& x, const Axes& axes) { return mean(square(x - mean(x, axes, true)), axes); }

}  // namespace

TEST_CASE("batch_norm: init normalises, one apply updates the running averages (Flax test_batch_norm)") {
  const auto keys = split(Key(0));
  const Tensor x = normal(keys[0], Shape{4, 3, 2});
  const auto bn = partial(core::batch_norm, "use_running_average"_kw = false, "momentum"_kw = 0.9f);
  auto [y, variables] = core::init(bn)(keys[1], x);
  check_close(mean(y, {0, 1}), {0, 0}, Shape{2}, 1e-4f, 0.0f);
  check_close(biased_var(y, {0, 1}), {1, 1}, Shape{2}, 0.0f, 1e-4f);
  CHECK(variables.paths() ==
        std::vector<std::string>{"batch_stats/mean", "batch_stats/var", "params/bias", "params/scale"});
  // No update while initialising.
  check_close(variables.at("batch_stats/mean"), {0, 0}, Shape{2}, 0.0f, 0.0f);
  check_close(variables.at("batch_stats/var"), {1, 1}, Shape{2}, 0.0f, 0.0f);

  auto [y2, updated] = core::apply(bn, "batch_stats")(variables, x);
  CHECK(updated.collections() == std::vector<std::string>{"batch_stats"});
  check_close(updated.at("batch_stats/mean"), mean(x, {0, 1}) * 0.1f, 1e-4f, 0.0f);
  check_close(updated.at("batch_stats/var"), biased_var(x, {0, 1}) * 0.1f + 0.9f, 0.0f, 1e-4f);
  check_close(y2, y);
}

TEST_CASE("batch_norm: eval mode normalises with the running statistics") {
  const Tensor x = pattern(Shape{3, 2}, -1.0f, 2.0f);
  const auto eval = partial(core::batch_norm, core::BatchNormOptions{.use_running_average = true});
  auto [y0, variables] = core::init(eval)(Key(0), x);
  check_close(y0, x * (1.0f / std::sqrt(1.0f + 1e-5f)));  // mean 0, var 1 at init
  const Variables stats = variables.set("batch_stats/mean", Tensor({0.5f, -1.0f}, Shape{2}))
                              .set("batch_stats/var", Tensor({4.0f, 0.25f}, Shape{2}))
                              .set("params/scale", Tensor({2.0f, 3.0f}, Shape{2}))
                              .set("params/bias", Tensor({0.1f, 0.2f}, Shape{2}));
  const Tensor y = core::apply(eval)(stats, x);
  const auto xv = x.to_vector();
  std::vector<float> expected;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const bool c0 = i % 2 == 0;
    const double m = c0 ? 0.5 : -1.0, v = c0 ? 4.0 : 0.25, s = c0 ? 2.0 : 3.0, b = c0 ? 0.1 : 0.2;
    expected.push_back(static_cast<float>((xv[i] - m) / std::sqrt(v + 1e-5) * s + b));
  }
  check_close(y, expected, Shape{3, 2});
  // The feature axis may be another axis.
  const Tensor xt = pattern(Shape{2, 3, 4});
  auto [yt, vt] = core::init(
      partial(core::batch_norm, core::BatchNormOptions{.use_running_average = false, .axis = 1}))(Key(0), xt);
  CHECK(vt.at("params/scale").shape() == Shape{3});
  check_close(mean(yt, {0, 2}), {0, 0, 0}, Shape{3}, 1e-5f, 0.0f);
}

TEST_CASE("batch_norm: Flax's errors for immutable or missing batch_stats") {
  const Tensor x = pattern(Shape{4, 2});
  const auto train = partial(core::batch_norm, core::BatchNormOptions{.use_running_average = false});
  const auto eval = partial(core::batch_norm, core::BatchNormOptions{.use_running_average = true});
  const Variables variables = core::init(train)(Key(0), x).second;
  check_throws_with<Error>([&] { (void)core::apply(train)(variables, x); },
                           {"update variable \"mean\"", "collection \"batch_stats\" is immutable"});
  check_throws_with<KeyError>([&] { (void)core::apply(eval)(variables.without("batch_stats"), x); },
                              {"\"mean\"", "collection \"batch_stats\"", "the collection is empty"});
  check_throws_with<DTypeError>(
      [&] {
        (void)core::init(train)(Key(0), Tensor({1, 2}, Shape{1, 2}));
      },
      {"core::batch_norm"});
}

TEST_CASE("batch_norm: gradients in training mode match finite differences") {
  const Tensor x = pattern(Shape{4, 3}, -1.0f, 2.0f);
  const Tensor w = pattern(Shape{4, 3}, -1.0f, 1.0f, 6);
  const auto train = partial(core::batch_norm, core::BatchNormOptions{.use_running_average = false});
  const Variables variables = core::init(train)(Key(0), x)
                                  .second.set("params/scale", Tensor({0.5f, 1.0f, 2.0f}, Shape{3}))
                                  .set("params/bias", Tensor({0.0f, 1.0f, -1.0f}, Shape{3}));
  auto loss = [&](const Variables& v, const Tensor& t) {
    return sum(core::apply(train, "batch_stats")(v, t).first * w);
  };
  check_gradient([&](const Tensor& t) { return loss(variables, t); }, x);
  for (const char* p : {"params/scale", "params/bias"})
    check_gradient([&](const Tensor& t) { return loss(variables.set(p, t), x); }, variables.at(p));
}

// ------------------------------------------------------------------------------------- group_norm

TEST_CASE("group_norm: statistics per group over all non-batch axes (Flax test_group_norm, closed form)") {
  const Tensor x = pattern(Shape{2, 3, 2, 8}, -2.0f, 3.0f);
  const float eps = 1e-5f;
  const auto layer = partial(core::group_norm, "num_groups"_kw = std::int64_t{2}, "epsilon"_kw = eps);
  auto [y, variables] = init_and_check_apply(layer, Key(0), x);
  CHECK(variables.at("params/scale").shape() == Shape{8});
  CHECK(variables.at("params/bias").shape() == Shape{8});
  const auto xv = x.to_vector();
  std::vector<float> expected(xv.size());
  for (int n = 0; n < 2; ++n)
    for (int g = 0; g < 2; ++g) {
      std::vector<std::size_t> idx;  // elements of (n, group g)
      for (int s = 0; s < 6; ++s)
        for (int c = 4 * g; c < 4 * g + 4; ++c) idx.push_back(static_cast<std::size_t>((n * 6 + s) * 8 + c));
      double m = 0, v = 0;
      for (auto i : idx) m += xv[i];
      m /= static_cast<double>(idx.size());
      for (auto i : idx) v += (xv[i] - m) * (xv[i] - m);
      v /= static_cast<double>(idx.size());
      for (auto i : idx) expected[i] = static_cast<float>((xv[i] - m) / std::sqrt(v + eps));
    }
  check_close(y, expected, x.shape(), 1e-5f, 1e-4f);
  const Tensor w = pattern(x.shape(), -1.0f, 1.0f, 2);
  check_gradient([&](const Tensor& t) { return sum(core::apply(layer)(variables, t) * w); }, x);
}

TEST_CASE("group_norm with one group is layer_norm over all non-batch axes (Flax's equivalence)") {
  const Tensor x = pattern(Shape{2, 4, 3, 6}, -1.0f, 2.0f);
  const auto ln = partial(core::layer_norm, "reduction_axes"_kw = std::vector<int>{1, 2, 3});
  const auto gn = partial(core::group_norm, "num_groups"_kw = std::int64_t{1});
  auto [y_ln, v_ln] = core::init(ln)(Key(0), x);
  auto [y_gn, v_gn] = core::init(gn)(Key(0), x);
  CHECK(v_ln.paths() == v_gn.paths());
  check_close(y_gn, y_ln, 1e-5f, 1e-4f);
}

TEST_CASE("group_norm: channels not divisible by the groups is a ValueError naming both") {
  check_throws_with<ValueError>(
      [] {
        (void)core::init(partial(core::group_norm, core::GroupNormOptions{}))(Key(0), ones(Shape{2, 4, 4, 8}));
      },
      {"core::group_norm", "Number of groups (32) does not divide the number of channels (8)"});
  check_throws_with<ValueError>(
      [] {
        (void)core::init(partial(core::group_norm, "num_groups"_kw = std::int64_t{0}))(Key(0), ones(Shape{2, 4}));
      },
      {"Number of groups (0)"});
}

// ------------------------------------------------------------------------------------ empty input

TEST_CASE("layers accept an empty batch") {
  const Tensor x = zeros(Shape{0, 3});
  CHECK(core::init(partial(core::dense, 2))(Key(0), x).first.shape() == Shape{0, 2});
  CHECK(core::init(partial(core::dense_general, std::vector<std::int64_t>{2, 2}))(Key(0), x).first.shape() ==
        Shape{0, 2, 2});
  CHECK(core::init(partial(core::layer_norm, core::LayerNormOptions{}))(Key(0), x).first.shape() == Shape{0, 3});
  CHECK(drop(0.5f, x, Key(0)).shape() == Shape{0, 3});
  CHECK(core::init(partial(core::embed, 4, 3))(Key(0), Tensor(std::vector<std::int32_t>{}, Shape{0})).first.shape() ==
        Shape{0, 3});
  const Tensor q = zeros(Shape{0, 2, 1, 4});
  CHECK(core::dot_product_attention(q, q, q).shape() == Shape{0, 2, 1, 4});
  CHECK(core::init(partial(core::conv, 2, std::vector<std::int64_t>{3, 3}))(Key(0), zeros(Shape{0, 4, 4, 1}))
            .first.shape() == Shape{0, 4, 4, 2});
}

// ------------------------------------------------------------------------------------- activation

TEST_CASE("core activations are weft's ops") {
  const Tensor x({-1.0f, 0.5f}, Shape{2});
  check_close(core::relu(x), {0.0f, 0.5f}, Shape{2});
  check_close(core::tanh(x), weft::tanh(x));
  check_close(core::sigmoid(x), weft::sigmoid(x));
  check_close(core::silu(x), x * weft::sigmoid(x));
  check_close(core::gelu(x), weft::gelu(x));
  check_close(core::softmax(x), weft::softmax(x));
  check_close(core::log_softmax(x), weft::log_softmax(x));
}

// -------------------------------------------------------------------------------------- attention

namespace {

// Attention by loops in double: q (B, Q, H, D), k (B, K, H, D), v (B, K, H, E) -> (B, Q, H, E);
// keep(b, h, i, j) says whether query i may attend to key j (a fully masked row is uniform, as Flax).
template <class Keep>
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, Keep keep) {
  const auto B = q.shape()[0], Q = q.shape()[1], H = q.shape()[2], D = q.shape()[3];
  const auto K = k.shape()[1], E = v.shape()[3];
  const auto qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  std::vector<float> out(static_cast<std::size_t>(B * Q * H * E));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t i = 0; i < Q; ++i) {
        std::vector<double> s(static_cast<std::size_t>(K));
        bool any = false;
        for (std::int64_t j = 0; j < K; ++j) {
          double dot = 0;
          for (std::int64_t d = 0; d < D; ++d)
            dot += static_cast<double>(qv[static_cast<std::size_t>(((b * Q + i) * H + h) * D + d)]) *
                   kv[static_cast<std::size_t>(((b * K + j) * H + h) * D + d)];
          s[static_cast<std::size_t>(j)] = keep(b, h, i, j) ? dot / std::sqrt(static_cast<double>(D)) : -INFINITY;
          any = any || keep(b, h, i, j);
        }
        double mx = -INFINITY, total = 0;
        for (double x : s) mx = std::max(mx, x);
        for (double& x : s) total += (x = any ? std::exp(x - mx) : 1.0);
        for (std::int64_t e = 0; e < E; ++e) {
          double acc = 0;
          for (std::int64_t j = 0; j < K; ++j)
            acc += s[static_cast<std::size_t>(j)] / total * vv[static_cast<std::size_t>(((b * K + j) * H + h) * E + e)];
          out[static_cast<std::size_t>(((b * Q + i) * H + h) * E + e)] = static_cast<float>(acc);
        }
      }
  return Tensor(out, Shape{B, Q, H, E});
}

constexpr auto keep_all = [](std::int64_t, std::int64_t, std::int64_t, std::int64_t) { return true; };

}  // namespace

TEST_CASE("dot_product_attention: a hand-computed case (two positions, one head, depth 2) and a causal mask") {
  const Tensor q({1.0f, 0.0f, 0.0f, 1.0f}, Shape{1, 2, 1, 2});
  const Tensor v({1.0f, 2.0f, 3.0f, 4.0f}, Shape{1, 2, 1, 2});
  const double e = std::exp(1.0 / std::sqrt(2.0));  // scores 1/sqrt(2) on the diagonal, 0 elsewhere
  const double w_diag = e / (e + 1), w_off = 1 / (e + 1);
  const std::vector<float> expected = {
      static_cast<float>(w_diag * 1 + w_off * 3), static_cast<float>(w_diag * 2 + w_off * 4),
      static_cast<float>(w_off * 1 + w_diag * 3), static_cast<float>(w_off * 2 + w_diag * 4)};
  check_close(core::dot_product_attention(q, q, v), expected, Shape{1, 2, 1, 2});
  check_close(
      core::dot_product_attention_weights(q, q),
      {static_cast<float>(w_diag), static_cast<float>(w_off), static_cast<float>(w_off), static_cast<float>(w_diag)},
      Shape{1, 1, 2, 2});
  // Causal: position 0 sees only itself; position 1 is unchanged.
  const Tensor causal = core::make_causal_mask(2);
  check_close(core::dot_product_attention(q, q, v, {.mask = causal}), {1, 2, expected[2], expected[3]},
              Shape{1, 2, 1, 2});
}

TEST_CASE("dot_product_attention: batches and heads agree with loops; weights rows sum to 1") {
  const Tensor q = pattern(Shape{2, 3, 4, 5}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 6, 4, 5}, -1.0f, 1.0f, 2);
  const Tensor v = pattern(Shape{2, 6, 4, 3}, -1.0f, 1.0f, 3);
  check_close(core::dot_product_attention(q, k, v), attention_reference(q, k, v, keep_all), 1e-5f, 1e-4f);
  const Tensor w = core::dot_product_attention_weights(q, k);
  REQUIRE(w.shape() == Shape{2, 4, 3, 6});
  check_close(sum(w, -1), std::vector<float>(2 * 4 * 3, 1.0f), Shape{2, 4, 3}, 1e-6f, 0.0f);
  // One head, one query position and no batch axes take the copy-free paths.
  const Tensor q1 = pattern(Shape{1, 2, 5}), k1 = pattern(Shape{4, 2, 5}, -1.0f, 1.0f, 1), v1 = pattern(Shape{4, 2, 3});
  check_close(core::dot_product_attention(q1, k1, v1),
              reshape(attention_reference(reshape(q1, Shape{1, 1, 2, 5}), reshape(k1, Shape{1, 4, 2, 5}),
                                          reshape(v1, Shape{1, 4, 2, 3}), keep_all),
                      Shape{1, 2, 3}),
              1e-5f, 1e-4f);
}

TEST_CASE("dot_product_attention: masks broadcast over batch and heads; masked scores get no weight") {
  const Tensor q = pattern(Shape{2, 3, 2, 4}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 4, 2, 4}, -1.0f, 1.0f, 2);
  const Tensor v = pattern(Shape{2, 4, 2, 3}, -1.0f, 1.0f, 3);
  // Padding: batch 0 has 3 real query tokens and 2 real keys, batch 1 has 2 and 4.
  const Tensor qm({1, 1, 1, 1, 1, 0}, Shape{2, 3}), km({1, 1, 0, 0, 1, 1, 1, 1}, Shape{2, 4});
  const Tensor mask = core::make_attention_mask(qm, km);
  REQUIRE(mask.shape() == Shape{2, 1, 3, 4});
  CHECK(mask.to_int_vector() == std::vector<std::int32_t>{1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0,  //
                                                          1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0});
  const auto qmv = qm.to_int_vector(), kmv = km.to_int_vector();
  auto keep = [&](std::int64_t b, std::int64_t, std::int64_t i, std::int64_t j) {
    return qmv[static_cast<std::size_t>(b * 3 + i)] && kmv[static_cast<std::size_t>(b * 4 + j)];
  };
  check_close(core::dot_product_attention(q, k, v, {.mask = mask}), attention_reference(q, k, v, keep), 1e-5f, 1e-4f);
  const Tensor w = core::dot_product_attention_weights(q, k, {.mask = mask});
  const auto wv = w.to_vector();
  CHECK(wv[2] == 0.0f);  // batch 0, head 0, query 0, key 2: padded
  CHECK(wv[static_cast<std::size_t>(((1 * 2 + 0) * 3 + 2) * 4)] == doctest::Approx(0.25));  // fully masked row: uniform
  // The causal mask (1, q, k) broadcasts over batch and heads.
  const Tensor causal = core::make_causal_mask(3);
  CHECK(causal.to_int_vector() == std::vector<std::int32_t>{1, 0, 0, 1, 1, 0, 1, 1, 1});
  const Tensor k3 = pattern(Shape{2, 3, 2, 4}), v3 = pattern(Shape{2, 3, 2, 3});
  check_close(core::dot_product_attention(q, k3, v3, {.mask = causal}),
              attention_reference(q, k3, v3, [](auto, auto, auto i, auto j) { return j <= i; }), 1e-5f, 1e-4f);
  // A bias adds to the scores: a large negative bias acts as a mask.
  const Tensor bias = astype(causal, DType::float32) * 1e9f - 1e9f;
  check_close(core::dot_product_attention(q, k3, v3, {.bias = bias}),
              core::dot_product_attention(q, k3, v3, {.mask = causal}), 1e-6f, 1e-5f);
}

TEST_CASE("dot_product_attention: dropout multiplies the weights by bernoulli(rng, 1 - rate) / (1 - rate)") {
  const Tensor q = pattern(Shape{2, 3, 2, 4}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 5, 2, 4}, -1.0f, 1.0f, 2);
  const Tensor plain = core::dot_product_attention_weights(q, k);
  const Key key(5);
  // broadcast_dropout: one (q_len, kv_len) mask for every batch element and head.
  const Tensor shared =
      core::dot_product_attention_weights(q, k, {.dropout_rate = 0.25f, .dropout_rng = key, .deterministic = false});
  check_close(shared, plain * (astype(bernoulli(key, 0.75f, Shape{1, 1, 3, 5}), DType::float32) / 0.75f), 0.0f, 0.0f);
  const Tensor own = core::dot_product_attention_weights(
      q, k, {.dropout_rate = 0.25f, .broadcast_dropout = false, .dropout_rng = key, .deterministic = false});
  check_close(own, plain * (astype(bernoulli(key, 0.75f, Shape{2, 2, 3, 5}), DType::float32) / 0.75f), 0.0f, 0.0f);
  // deterministic: no dropout, no rng needed.
  CHECK(same_values(core::dot_product_attention_weights(q, k, {.dropout_rate = 0.25f, .deterministic = true}), plain));
  // rate 1 drops everything (not 0 / 0).
  check_close(
      core::dot_product_attention_weights(q, k, {.dropout_rate = 1.0f, .dropout_rng = key, .deterministic = false}),
      zeros(plain.shape()), 0.0f, 0.0f);
}

TEST_CASE("dot_product_attention: bad inputs are errors that name the shapes and the fix") {
  const Tensor q = pattern(Shape{1, 3, 2, 4}), k = pattern(Shape{1, 5, 2, 4}), v = pattern(Shape{1, 5, 2, 3});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, pattern(Shape{1, 5, 3, 4}), v);
      },
      {"heads", "(1, 3, 2, 4)", "(1, 5, 3, 4)"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, pattern(Shape{1, 5, 2, 3}), v);
      },
      {"depth"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, k, pattern(Shape{1, 4, 2, 3}));
      },
      {"length"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::dot_product_attention(q, pattern(Shape{2, 5, 2, 4}), v);
      },
      {"batch"});
  check_throws_with<ShapeError>([&] { (void)core::dot_product_attention(pattern(Shape{2, 4}), k, v); }, {"rank"});
  check_throws_with<DTypeError>(
      [&] {
        (void)core::dot_product_attention(q, k, v, {.mask = ones(Shape{3, 5})});
      },
      {"mask", "int32"});
  check_throws_with<ShapeError>(
      [&] { (void)core::dot_product_attention(q, k, v, {.mask = core::make_causal_mask(3)}); },
      {"mask", "(1, 3, 3)", "(1, 2, 3, 5)"});
  check_throws_with<ValueError>([&] { (void)core::dot_product_attention(q, k, v, {.dropout_rate = 0.1f}); },
                                {"`deterministic`"});
  check_throws_with<ValueError>(
      [&] { (void)core::dot_product_attention(q, k, v, {.dropout_rate = 0.1f, .deterministic = false}); },
      {"dropout_rng"});
  check_throws_with<ValueError>(
      [&] { (void)core::dot_product_attention(q, k, v, {.dropout_rate = 2.0f, .deterministic = true}); },
      {"dropout_rate", "[0, 1]"});
}

TEST_CASE("dot_product_attention: gradients of query, key and value match finite differences") {
  const Tensor q = pattern(Shape{2, 3, 2, 2}, -1.0f, 1.0f, 1);
  const Tensor k = pattern(Shape{2, 4, 2, 2}, -1.0f, 1.0f, 2);
  const Tensor v = pattern(Shape{2, 4, 2, 3}, -1.0f, 1.0f, 3);
  const Tensor mask({1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1}, Shape{1, 1, 3, 4});
  const Tensor w = pattern(Shape{2, 3, 2, 3}, -1.0f, 1.0f, 4);
  const core::DotProductAttentionOptions o{.mask = mask};
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(t, k, v, o) * w); }, q);
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(q, t, v, o) * w); }, k);
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(q, k, t, o) * w); }, v);
  // With dropout under a fixed key the mask is a constant.
  const core::DotProductAttentionOptions d{.dropout_rate = 0.3f, .dropout_rng = Key(1), .deterministic = false};
  check_gradient([&](const Tensor& t) { return sum(core::dot_product_attention(t, k, v, d) * w); }, q);
}

TEST_CASE("multi_head_dot_product_attention: parameter tree, Flax's initializers and the wiring") {
  const Tensor x = pattern(Shape{2, 5, 6});
  const core::MultiHeadDotProductAttentionOptions o{
      .num_heads = 2, .qkv_features = 8, .out_features = 7, .bias_init = init::normal(0.1f)};
  const auto layer = partial(core::multi_head_dot_product_attention, o);
  auto [y, variables] = init_and_check_apply(layer, Key(0), x);
  REQUIRE(y.shape() == Shape{2, 5, 7});
  CHECK(variables.paths() == std::vector<std::string>{"params/key/bias", "params/key/kernel", "params/out/bias",
                                                      "params/out/kernel", "params/query/bias", "params/query/kernel",
                                                      "params/value/bias", "params/value/kernel"});
  for (const char* p : {"query", "key", "value"}) {
    CHECK(variables.at(std::string("params/") + p + "/kernel").shape() == Shape{6, 2, 4});
    CHECK(variables.at(std::string("params/") + p + "/bias").shape() == Shape{2, 4});
  }
  CHECK(variables.at("params/out/kernel").shape() == Shape{2, 4, 7});
  CHECK(variables.at("params/out/bias").shape() == Shape{7});
  // The query kernel: lecun_normal on the flattened (6, 8) under the child's key.
  check_close(variables.at("params/query/kernel"),
              reshape(lecun_normal_values(fold_in(Key(0), kQueryFirst), Shape{6, 8}, 6.0), Shape{6, 2, 4}), 0.0f, 0.0f);
  // The output is out(attention(query(x), key(x), value(x))).
  auto project = [&](const std::string& name, const Tensor& in) {
    const Tensor kernel = reshape(variables.at("params/" + name + "/kernel"), Shape{in.shape()[2], 8});
    return reshape(matmul(in, kernel) + reshape(variables.at("params/" + name + "/bias"), Shape{8}),
                   Shape{2, in.shape()[1], 2, 4});
  };
  const Tensor a = core::dot_product_attention(project("query", x), project("key", x), project("value", x));
  const Tensor expected = matmul(reshape(a, Shape{2, 5, 8}), reshape(variables.at("params/out/kernel"), Shape{8, 7})) +
                          variables.at("params/out/bias");
  check_close(y, expected, 1e-5f, 1e-4f);
  // Self-attention is cross-attention of the inputs with themselves.
  CHECK(same_values(core::apply(layer)(variables, x, x), y));
}

TEST_CASE("multi_head_dot_product_attention: cross-attention, defaults and the causal mask") {
  const Tensor x = pattern(Shape{2, 5, 6});
  const Tensor memory = pattern(Shape{2, 3, 10}, -1.0f, 1.0f, 4);
  // num_heads only: qkv_features and out_features default to inputs_q's last extent.
  const auto layer = partial(core::multi_head_dot_product_attention, 3);
  auto [y, variables] = init_and_check_apply(layer, Key(1), x, memory);
  CHECK(y.shape() == Shape{2, 5, 6});
  CHECK(variables.at("params/query/kernel").shape() == Shape{6, 3, 2});
  CHECK(variables.at("params/key/kernel").shape() == Shape{10, 3, 2});
  CHECK(variables.at("params/out/kernel").shape() == Shape{3, 2, 6});
  // Causal self-attention: position 0 does not see later positions.
  auto [yc, vc] = core::init(layer)(Key(1), x, Tensor{}, core::make_causal_mask(5));
  std::vector<float> changed = x.to_vector();
  for (std::size_t i = 6; i < 30; ++i) changed[i] += 1.0f;  // batch 0, positions 1..4
  const Tensor y2 = core::apply(layer)(vc, Tensor(changed, x.shape()), Tensor{}, core::make_causal_mask(5));
  const auto a = yc.to_vector(), b = y2.to_vector();
  for (std::size_t i = 0; i < 6; ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-6));
  CHECK(a[6] != b[6]);
}

TEST_CASE("multi_head_dot_product_attention: errors name the numbers and the option") {
  const Tensor x = pattern(Shape{2, 5, 6});
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::multi_head_dot_product_attention, 4))(Key(0), x); },
      {"Memory dimension (6) must be divisible by number of heads (4)", "qkv_features"});
  const core::MultiHeadDotProductAttentionOptions with_dropout{.num_heads = 2, .dropout_rate = 0.1f};
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::multi_head_dot_product_attention, with_dropout))(Key(0), x); },
      {"`deterministic`", "dropout_rate"});
  check_throws_with<ShapeError>(
      [&] {
        (void)core::init(partial(core::multi_head_dot_product_attention, 2))(Key(0), x, pattern(Shape{3, 5, 6}));
      },
      {"inputs_kv", "(3, 5, 6)"});
}

TEST_CASE("multi_head_dot_product_attention with dropout (Flax test_multihead_self_attention_explicit_dropout)") {
  // Two layers with identical parameters (ones / zeros) in one parent.
  auto two = [](core::Scope& s, const Tensor& x, std::optional<Key> rng) {
    const core::MultiHeadDotProductAttentionOptions o{.num_heads = 2,
                                                      .qkv_features = 8,
                                                      .dropout_rate = 0.5f,
                                                      .deterministic = false,
                                                      .kernel_init = init::ones(),
                                                      .bias_init = init::zeros()};
    const Tensor a = s.child("a", partial(core::multi_head_dot_product_attention, o))(x, Tensor{}, Tensor{}, rng);
    const Tensor b = s.child("b", partial(core::multi_head_dot_product_attention, o))(x, Tensor{}, Tensor{}, rng);
    return std::pair{a, b};
  };
  const auto keys = split(Key(0), 4);
  const core::Rngs rngs{{"params", keys[0]}, {"dropout", keys[1]}};
  const Tensor x = pattern(Shape{4, 3, 5});
  const std::optional<Key> none;
  const Variables variables = core::init(two)(rngs, x, none).second;
  const auto [a, b] = core::apply(two)(variables, rngs, x, none);
  CHECK_FALSE(same_values(a, b));  // different paths, different dropout keys
  const auto [a2, b2] = core::apply(two)(variables, rngs, x, none);
  CHECK(same_values(a, a2));
  CHECK(same_values(b, b2));
  const auto [a3, b3] = core::apply(two)(variables, core::Rngs{{"params", keys[0]}, {"dropout", keys[2]}}, x, none);
  CHECK_FALSE(same_values(a, a3));
  // An explicit dropout_rng overrides the stream (both layers then drop alike) and needs no rngs.
  const auto [a4, b4] = core::apply(two)(variables, rngs, x, std::optional<Key>(keys[3]));
  CHECK(same_values(a4, b4));
  const auto [a5, b5] = core::apply(two)(variables, x, std::optional<Key>(keys[3]));
  CHECK(same_values(a4, a5));
  // deterministic: no dropout, whatever the rngs, and the same as dropout_rate 0.
  auto eval = [](core::Scope& s, const Tensor& x, float rate) {
    const core::MultiHeadDotProductAttentionOptions o{
        .num_heads = 2, .qkv_features = 8, .dropout_rate = rate, .deterministic = true, .kernel_init = init::ones()};
    return s.child("a", partial(core::multi_head_dot_product_attention, o))(x);
  };
  const Tensor e1 = core::apply(eval)(variables, rngs, x, 0.5f);
  CHECK(same_values(e1, core::apply(eval)(variables, core::Rngs{{"dropout", keys[2]}}, x, 0.5f)));
  CHECK(same_values(e1, core::apply(eval)(variables, x, 0.0f)));
}

TEST_CASE("batch_norm: the fused channels-last path equals the general path on transposed data") {
  // Training mode with the features last runs a fused kernel; any other feature axis runs the same
  // formula from ops. Transposing NCHW data to NHWC must give the same outputs, statistics and
  // gradients either way.
  const Tensor nchw = pattern(Shape{3, 4, 5, 2}, -2.0f, 3.0f, 7);
  const Tensor nhwc = transpose(nchw, {0, 2, 3, 1});
  const auto first = [](core::BatchNormOptions o) {
    return [o](core::Scope& s, const Tensor& x) { return core::batch_norm(o, s, x); };
  };
  const auto channels_first = first({.use_running_average = false, .axis = 1, .momentum = 0.9f});
  const auto channels_last = first({.use_running_average = false, .momentum = 0.9f});
  const auto [y1, v1] = core::init(channels_first)(Key(0), nchw);
  const auto [y2, v2] = core::init(channels_last)(Key(0), nhwc);
  check_close(transpose(y1, {0, 2, 3, 1}), y2, 1e-5f, 1e-5f);
  auto [o1, s1] = core::apply(channels_first, {"batch_stats"})(v1, nchw);
  auto [o2, s2] = core::apply(channels_last, {"batch_stats"})(v2, nhwc);
  check_close(s1.at("batch_stats/mean"), s2.at("batch_stats/mean"), 1e-6f, 1e-5f);
  check_close(s1.at("batch_stats/var"), s2.at("batch_stats/var"), 1e-6f, 1e-5f);
  // Gradients with respect to the input, scale and bias, under a non-uniform read-out.
  const Tensor w = pattern(nhwc.shape(), -1.0f, 1.0f, 9);
  auto loss_last = [&](const Variables& v) {
    return sum(core::apply(channels_last, {"batch_stats"})(v, nhwc).first * w);
  };
  auto loss_first = [&](const Variables& v) {
    return sum(transpose(core::apply(channels_first, {"batch_stats"})(v, nchw).first, {0, 2, 3, 1}) * w);
  };
  const Variables g_last = grad(loss_last)(v2), g_first = grad(loss_first)(v1);
  check_close(g_last.at("params/scale"), g_first.at("params/scale"), 1e-4f, 1e-4f);
  check_close(g_last.at("params/bias"), g_first.at("params/bias"), 1e-4f, 1e-4f);
  check_gradient([&](const Tensor& t) { return sum(core::apply(channels_last, {"batch_stats"})(v2, t).first * w); },
                 nhwc, 1e-2f, 3e-3f, 3e-2f);
}

// Normalisation of data whose mean is large against its spread (x ~ N(100, 1)): every path's
// statistics, output and input gradient against a float64 reference computed here from the same
// float inputs. group(i) maps a flat index to its statistics group.
namespace {
struct NormReference {
  std::vector<double> mean, var, y, dx;  // per group; per element (y, and d sum(y * w) / dx)
};
NormReference norm_reference(const Tensor& x, const Tensor& w, std::int64_t groups, float epsilon,
                             const std::function<std::int64_t(std::int64_t)>& group) {
  const std::vector<float> xs = x.to_vector(), ws = w.to_vector();
  const auto n = static_cast<std::int64_t>(xs.size());
  NormReference r{std::vector<double>(groups), std::vector<double>(groups), std::vector<double>(n),
                  std::vector<double>(n)};
  std::vector<double> count(groups), mw(groups), mwx(groups);
  for (std::int64_t i = 0; i < n; ++i) r.mean[group(i)] += xs[i], count[group(i)] += 1;
  for (std::int64_t g = 0; g < groups; ++g) r.mean[g] /= count[g];
  for (std::int64_t i = 0; i < n; ++i) r.var[group(i)] += (xs[i] - r.mean[group(i)]) * (xs[i] - r.mean[group(i)]);
  for (std::int64_t g = 0; g < groups; ++g) r.var[g] /= count[g];
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t g = group(i);
    r.y[i] = (xs[i] - r.mean[g]) / std::sqrt(r.var[g] + epsilon);
    mw[g] += ws[i] / count[g];
    mwx[g] += ws[i] * r.y[i] / count[g];
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t g = group(i);
    r.dx[i] = (ws[i] - mw[g] - r.y[i] * mwx[g]) / std::sqrt(r.var[g] + epsilon);
  }
  return r;
}
double max_abs_error(const Tensor& got, const std::vector<double>& want) {
  const std::vector<float> g = got.to_vector();
  double e = 0;
  for (std::size_t i = 0; i < want.size(); ++i) e = std::max(e, std::abs(g[i] - want[i]));
  return e;
}
// The output and input gradient of `norm` (a core layer function without parameters' effect: scale
// 1, bias 0) against the reference.
template <class Norm>
void check_norm_precision(const char* path, double tolerance, const Norm& norm, const Tensor& x,
                          const NormReference& ref, const Tensor& w) {
  INFO(std::string(path));
  const Variables v = core::init(norm, core::Mutable::all())(Key(0), x).second;
  auto [y, stats] = core::apply(norm, core::Mutable{"batch_stats"})(v, x);
  CHECK(max_abs_error(y, ref.y) < tolerance);
  const auto loss = [&](const Tensor& t) {
    return sum(core::apply(norm, core::Mutable{"batch_stats"})(v, t).first * w);
  };
  const Tensor dx = grad(loss)(x);
  CHECK(max_abs_error(dx, ref.dx) < 4 * tolerance);
}
}  // namespace

TEST_CASE("batch, layer and group norm keep the two-pass formula's precision when the mean is large") {
  const Tensor x = normal(Key(3), Shape{256, 6}) + 100.0f;
  const Tensor w = normal(Key(4), Shape{256, 6});
  const float eps = 1e-5f;
  const auto per_column = [](std::int64_t i) { return i % 6; };
  const NormReference columns = norm_reference(x, w, 6, eps, per_column);
  // BatchNorm's fused channels-last path: momentum 0 makes the running statistics the batch's.
  const auto bn = partial(core::batch_norm, "use_running_average"_kw = false, "momentum"_kw = 0.0f);
  const Variables v = core::init(bn)(Key(0), x).second;
  const auto [y, stats] = core::apply(bn, core::Mutable{"batch_stats"})(v, x);
  const std::vector<float> var = stats.at("batch_stats/var").to_vector();
  const std::vector<float> mu = stats.at("batch_stats/mean").to_vector();
  // The two-pass formula on the same data, in float32, for comparison.
  const std::vector<float> two_pass = mean(square(x - mean(x, 0, true)), 0).to_vector();
  for (std::int64_t i = 0; i < 6; ++i) {
    INFO("channel " << i << ": var " << var[i] << ", two-pass " << two_pass[i] << ", float64 " << columns.var[i]);
    const double two_pass_error = std::abs(two_pass[i] - columns.var[i]) / columns.var[i];
    CHECK(std::abs(var[i] - columns.var[i]) / columns.var[i] <= std::max(2 * two_pass_error, 4e-6));
    CHECK(std::abs(mu[i] - columns.mean[i]) / columns.mean[i] < 1e-7);
  }
  check_norm_precision("batch norm, fused", 1e-5, bn, x, columns, w);
  // BatchNorm on the feature axis 0 (the unfused path), the same data transposed.
  const Tensor xt = transpose(x, {1, 0}), wt = transpose(w, {1, 0});
  const auto per_row = [](std::int64_t i) { return i / 256; };
  const NormReference rows = norm_reference(xt, wt, 6, eps, per_row);
  check_norm_precision("batch norm, axis 0", 5e-5,
                       partial(core::batch_norm, "use_running_average"_kw = false, "axis"_kw = 0), xt, rows, wt);
  // LayerNorm's fused last-axis path (rows of 256), and its path for other reduction axes.
  check_norm_precision("layer norm, fused", 1e-5, partial(core::layer_norm, "epsilon"_kw = eps), xt, rows, wt);
  check_norm_precision("layer norm, axis 0", 5e-5,
                       partial(core::layer_norm, "epsilon"_kw = eps, "reduction_axes"_kw = std::vector<int>{0}), x,
                       columns, w);
  // GroupNorm: (4, 64, 6) in 3 groups of 2 channels, statistics per example and group.
  const Tensor xg = reshape(x, Shape{4, 64, 6}), wg = reshape(w, Shape{4, 64, 6});
  check_norm_precision("group norm", 5e-5, partial(core::group_norm, "num_groups"_kw = 3, "epsilon"_kw = eps), xg,
                       norm_reference(xg, wg, 12, eps, [](std::int64_t i) { return (i / 384) * 3 + (i % 6) / 2; }), wg);
}
