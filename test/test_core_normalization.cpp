// core::layer_norm, batch_norm and group_norm: closed forms, the fused paths against the general
// ones, precision against float64 references, Flax's errors and finite differences.
#include <cmath>
#include <functional>
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
using weft::testing::init_and_check_apply;

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

// --------------------------------------------------------------------------------------- rms_norm

TEST_CASE("rms_norm: rows divided by their root mean square, then scale (closed form, no centring)") {
  const Tensor x({1.0f, 2.0f, 3.0f, 4.0f, 2.0f, -4.0f, 6.0f, 8.0f}, Shape{2, 4});
  auto [y, variables] = init_and_check_apply(partial(core::rms_norm, core::RMSNormOptions{}), Key(0), x);
  CHECK(variables.paths() == std::vector<std::string>{"params/scale"});
  check_close(variables.at("params/scale"), {1, 1, 1, 1}, Shape{4}, 0.0f, 0.0f);  // scale_init ones
  // Row 1: mean of squares (1 + 4 + 9 + 16) / 4 = 7.5; row 2: (4 + 16 + 36 + 64) / 4 = 30.
  const double r1 = std::sqrt(7.5 + 1e-6), r2 = std::sqrt(30.0 + 1e-6);
  const std::vector<float> expected = {
      static_cast<float>(1 / r1), static_cast<float>(2 / r1),  static_cast<float>(3 / r1), static_cast<float>(4 / r1),
      static_cast<float>(2 / r2), static_cast<float>(-4 / r2), static_cast<float>(6 / r2), static_cast<float>(8 / r2)};
  check_close(y, expected, Shape{2, 4});
  const Tensor scale({1.0f, 2.0f, 3.0f, -4.0f}, Shape{4});
  check_close(core::apply(partial(core::rms_norm, core::RMSNormOptions{}))(variables.set("params/scale", scale), x),
              Tensor(expected, Shape{2, 4}) * scale);
  // use_scale false: no parameters; epsilon enters under the root.
  auto [y2, none] =
      core::init(partial(core::rms_norm, "use_scale"_kw = false, "epsilon"_kw = 0.5f))(Key(0), x);
  CHECK(none.empty());
  check_close(y2,
              {static_cast<float>(1 / std::sqrt(8.0)), static_cast<float>(2 / std::sqrt(8.0)),
               static_cast<float>(3 / std::sqrt(8.0)), static_cast<float>(4 / std::sqrt(8.0)),
               static_cast<float>(2 / std::sqrt(30.5)), static_cast<float>(-4 / std::sqrt(30.5)),
               static_cast<float>(6 / std::sqrt(30.5)), static_cast<float>(8 / std::sqrt(30.5))},
              Shape{2, 4});
}

TEST_CASE("rms_norm: reduction_axes and feature_axes as Flax's _normalize takes them") {
  const Tensor x = pattern(Shape{2, 3, 4}, -1.0f, 2.0f);
  // Statistics over (1, 2) with scale over (1, 2): the flattened (2, 12) rows, scale (3, 4).
  const auto both = partial(core::rms_norm, "reduction_axes"_kw = std::vector<int>{1, 2},
                            "feature_axes"_kw = std::vector<int>{-1, 1});
  auto [y, variables] = init_and_check_apply(both, Key(0), x);
  CHECK(variables.at("params/scale").shape() == Shape{3, 4});
  const Tensor flat = core::init(partial(core::rms_norm, core::RMSNormOptions{}))(Key(0), reshape(x, {2, 12})).first;
  check_close(y, reshape(flat, {2, 3, 4}), 1e-6f, 1e-5f);
  // Statistics over the last axis, scale over axis 1: scale (3,) broadcast as (1, 3, 1).
  const auto middle = partial(core::rms_norm, "feature_axes"_kw = std::vector<int>{1});
  const Variables v = core::init(middle)(Key(0), x).second;
  CHECK(v.at("params/scale").shape() == Shape{3});
  const Tensor s({0.5f, 2.0f, -1.0f}, Shape{3});
  const Tensor plain = core::init(partial(core::rms_norm, "use_scale"_kw = false))(Key(0), x).first;
  check_close(core::apply(middle)(v.set("params/scale", s), x), plain * reshape(s, {1, 3, 1}), 1e-6f, 1e-5f);
}

TEST_CASE("rms_norm: gradients with respect to x and scale match finite differences") {
  const Tensor x = pattern(Shape{3, 5}, -1.0f, 2.0f);
  const Tensor w = pattern(Shape{3, 5}, -1.0f, 1.0f, 5);
  const auto layer = partial(core::rms_norm, core::RMSNormOptions{});
  const Variables variables =
      core::init(layer)(Key(0), x).second.set("params/scale", pattern(Shape{5}, 0.5f, 1.5f, 1));
  check_gradient([&](const Tensor& t) { return sum(core::apply(layer)(variables, t) * w); }, x);
  check_gradient([&](const Tensor& t) { return sum(core::apply(layer)(variables.set("params/scale", t), x) * w); },
                 variables.at("params/scale"));
  const auto rows = partial(core::rms_norm, "reduction_axes"_kw = std::vector<int>{0}, "feature_axes"_kw = std::vector<int>{0});
  const Variables vr = core::init(rows)(Key(0), x).second;
  check_gradient([&](const Tensor& t) { return sum(core::apply(rows)(vr, t) * w); }, x);
}

TEST_CASE("rms_norm: bad input and options are errors that say what to change") {
  const Tensor x = ones(Shape{2, 4});
  check_throws_with<ShapeError>([] { (void)core::init(partial(core::rms_norm, core::RMSNormOptions{}))(Key(0), Tensor(1.0f)); },
                                {"core::rms_norm", "at least one axis", "scalar"});
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::rms_norm, "reduction_axes"_kw = std::vector<int>{}))(Key(0), x); },
      {"core::rms_norm", "reduction_axes and feature_axes must each name at least one axis", "(2, 4)", "{-1}"});
  check_throws_with<ValueError>(
      [&] { (void)core::init(partial(core::rms_norm, "epsilon"_kw = -1.0f))(Key(0), x); },
      {"core::rms_norm", "epsilon must be >= 0", "got -1"});
  check_throws_with<ShapeError>(
      [&] { (void)core::init(partial(core::rms_norm, "feature_axes"_kw = std::vector<int>{2}))(Key(0), x); },
      {"core::rms_norm", "axis 2 is out of range for a tensor of rank 2"});
  check_throws_with<ShapeError>(
      [&] { (void)core::init(partial(core::rms_norm, "reduction_axes"_kw = std::vector<int>{1, -1}))(Key(0), x); },
      {"core::rms_norm", "an axis is listed twice"});
}
