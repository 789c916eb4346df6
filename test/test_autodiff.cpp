#include "testing.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

// Reference batched matmul by triple loop over (batch, m, n, k), NumPy broadcasting of the batch.
std::vector<float> naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb, Shape& out_shape) {
  const Shape &sa = a.shape(), &sb = b.shape();
  const int ra = sa.rank(), rb = sb.rank();
  const std::int64_t m = ta ? sa[ra - 1] : sa[ra - 2], k = ta ? sa[ra - 2] : sa[ra - 1];
  const std::int64_t n = tb ? sb[rb - 2] : sb[rb - 1];
  const std::int64_t batch_a = a.size() / (m * k), batch_b = b.size() / (k * n);
  const std::int64_t batch = std::max(batch_a, batch_b);
  std::vector<std::int64_t> dims =
      broadcast_shapes(Shape(std::vector<std::int64_t>(sa.begin(), sa.end() - 2)),
                       Shape(std::vector<std::int64_t>(sb.begin(), sb.end() - 2)))
          .to_vector();
  dims.push_back(m);
  dims.push_back(n);
  out_shape = Shape(dims);
  const auto va = a.to_vector(), vb = b.to_vector();
  std::vector<float> out(static_cast<std::size_t>(batch * m * n));
  for (std::int64_t bi = 0; bi < batch; ++bi) {
    const std::int64_t oa = (batch_a == 1 ? 0 : bi) * m * k, ob = (batch_b == 1 ? 0 : bi) * k * n;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::int64_t p = 0; p < k; ++p) {
          const float x = ta ? va[static_cast<std::size_t>(oa + p * m + i)] : va[static_cast<std::size_t>(oa + i * k + p)];
          const float y = tb ? vb[static_cast<std::size_t>(ob + j * k + p)] : vb[static_cast<std::size_t>(ob + p * n + j)];
          s += static_cast<double>(x) * y;
        }
        out[static_cast<std::size_t>(bi * m * n + i * n + j)] = static_cast<float>(s);
      }
  }
  return out;
}

}  // namespace

TEST_CASE("matmul: 2-D, 1-D promotion, transposed operands") {
  const Tensor a({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, Shape{2, 3});
  const Tensor b({7.f, 8.f, 9.f, 10.f, 11.f, 12.f}, Shape{3, 2});
  check_close(matmul(a, b), {58, 64, 139, 154}, Shape{2, 2});
  check_close(matmul(a, a, {.transpose_b = true}), {14, 32, 32, 77}, Shape{2, 2});
  check_close(matmul(a, a, {.transpose_a = true}), {17, 22, 27, 22, 29, 36, 27, 36, 45}, Shape{3, 3});
  check_close(matmul(b, a, {.transpose_a = true, .transpose_b = true}), {58, 139, 64, 154}, Shape{2, 2});
  const Tensor v({1.f, -1.f}, Shape{2});
  check_close(matmul(v, a), {-3, -3, -3}, Shape{3});
  check_close(matmul(b, v), {-1, -1, -1}, Shape{3});
  check_close(matmul(v, v), {2}, Shape{});
  // Batched (2, 2, 3) @ (3, 2), worked by hand.
  check_close(matmul(reshape(arange(12), Shape{2, 2, 3}), b), {31, 34, 112, 124, 193, 214, 274, 304}, Shape{2, 2, 2});
}

TEST_CASE("matmul: batched shapes and flags agree with a reference loop") {
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  const std::vector<Case> cases = {
      {{2, 4, 3}, {3, 5}, false, false}, {{2, 4, 3}, {5, 3}, false, true},  {{2, 3, 4}, {3, 5}, true, false},
      {{2, 4, 3}, {2, 3, 5}, false, false}, {{1, 4, 3}, {3, 3, 5}, false, false}, {{3, 4, 3}, {1, 5, 3}, false, true},
      {{4, 3}, {2, 3, 5}, false, false},  {{2, 3, 4}, {2, 5, 3}, true, true}, {{33, 17}, {17, 65}, false, false},
  };
  for (const auto& c : cases) {
    const Tensor a = pattern(c.a, -1, 1, 1), b = pattern(c.b, -1, 1, 2);
    Shape expected_shape;
    const auto expected = naive_matmul(a, b, c.ta, c.tb, expected_shape);
    INFO("a " << c.a << " b " << c.b << " ta " << c.ta << " tb " << c.tb);
    check_close(matmul(a, b, {c.ta, c.tb}), expected, expected_shape, 1e-5f, 1e-4f);
  }
}

TEST_CASE("matmul: a single row agrees with a reference loop at every column width the row kernel handles") {
  // m = 1 runs on weft's row kernel (blocks of 128 and 16 columns, then 1 to 15), not oneDNN.
  for (const std::int64_t n : {1, 5, 10, 15, 16, 17, 31, 127, 128, 129, 150, 300})
    for (const std::int64_t k : {1, 3, 64, 130}) {
      const Tensor a = pattern(Shape{1, k}, -1, 1, 3), b = pattern(Shape{k, n}, -1, 1, 4);
      Shape expected_shape;
      const auto expected = naive_matmul(a, b, false, false, expected_shape);
      INFO("k " << k << " n " << n);
      check_close(matmul(a, b), expected, expected_shape, 1e-5f, 1e-4f);
    }
  // Batches of single rows: each a product at its own offset into both operands.
  const Tensor a = pattern(Shape{3, 1, 20}, -1, 1, 5), b = pattern(Shape{3, 20, 19}, -1, 1, 6);
  Shape expected_shape;
  const auto expected = naive_matmul(a, b, false, false, expected_shape);
  check_close(matmul(a, b), expected, expected_shape, 1e-5f, 1e-4f);
}

TEST_CASE("matmul: shape errors name both shapes") {
  check_throws_with<ShapeError>([] { (void)matmul(ones(Shape{2, 3}), ones(Shape{2, 3})); }, {"matmul", "(2, 3)", "contracts"});
  check_throws_with<ShapeError>([] { (void)matmul(ones(Shape{2, 2, 3}), ones(Shape{3, 3, 2})); }, {"matmul", "(2,)", "(3,)"});
  check_throws_with<ShapeError>([] { (void)matmul(ones(Shape{}), ones(Shape{3})); }, {"at least one axis"});
}

TEST_CASE("gradients of matmul match finite differences for every flag and batch case") {
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  const std::vector<Case> cases = {
      {{2, 3}, {3, 4}, false, false}, {{3, 2}, {3, 4}, true, false}, {{2, 3}, {4, 3}, false, true},
      {{3, 2}, {4, 3}, true, true},   {{2, 2, 3}, {3, 4}, false, false}, {{2, 2, 3}, {1, 3, 4}, false, false},
      {{2, 3, 2}, {2, 4, 3}, true, true}, {{3}, {3, 2}, false, false}, {{2, 3}, {3}, false, false},
  };
  for (const auto& c : cases) {
    INFO("a " << c.a << " b " << c.b << " ta " << c.ta << " tb " << c.tb);
    const Tensor a = pattern(c.a, -1, 1, 1), b = pattern(c.b, -1, 1, 2);
    const MatmulOptions o{c.ta, c.tb};
    auto readout = [](const Tensor& t) { return sum(t * pattern(t.shape(), -1.0f, 1.0f, 5)); };
    check_gradient([&](const Tensor& t) { return readout(matmul(t, b, o)); }, a);
    check_gradient([&](const Tensor& t) { return readout(matmul(a, t, o)); }, b);
  }
}

TEST_CASE("gradients of sum, mean, reshape, transpose, broadcast_to") {
  const Tensor x = pattern(Shape{2, 3, 4});
  auto readout = [](const Tensor& t) { return sum(t * pattern(t.shape(), -1.0f, 1.0f, 5)); };
  check_gradient([&](const Tensor& t) { return readout(sum(t, 1)); }, x);
  check_gradient([&](const Tensor& t) { return readout(sum(t, {0, 2}, true)); }, x);
  check_gradient([&](const Tensor& t) { return readout(mean(t, -1)); }, x);
  check_gradient([&](const Tensor& t) { return mean(t); }, x);
  check_gradient([&](const Tensor& t) { return readout(reshape(t, {4, -1})); }, x);
  check_gradient([&](const Tensor& t) { return readout(transpose(t, {2, 0, 1})); }, x);
  check_gradient([&](const Tensor& t) { return readout(transpose(t)); }, x);
  check_gradient([&](const Tensor& t) { return readout(broadcast_to(t, Shape{2, 2, 3, 4})); }, x);
}

TEST_CASE("value_and_grad: value, gradient structure, unused leaves get zeros") {
  const std::vector<Tensor> params = {Tensor({1.f, 2.f}, Shape{2}), Tensor({3.f}, Shape{1}), ones(Shape{2, 2})};
  auto f = [](const std::vector<Tensor>& p, float scale) { return sum(p[0] * p[0]) * scale + sum(p[1]) * 2.0f; };
  const auto [value, g] = value_and_grad(f)(params, 3.0f);
  CHECK(value.item() == doctest::Approx(3.0f * 5.0f + 6.0f));
  CHECK_FALSE(value.is_tracked());
  REQUIRE(g.size() == 3);
  check_close(g[0], {6, 12}, Shape{2});
  check_close(g[1], {2}, Shape{1});
  check_close(g[2], {0, 0, 0, 0}, Shape{2, 2});
  // A leaf used twice accumulates both contributions.
  check_close(grad([](const Tensor& t) { return sum(t * t + t); })(Tensor({2.f}, Shape{1})), {5}, Shape{1});
  // A non-scalar result is refused.
  check_throws_with<ShapeError>([] { (void)grad([](const Tensor& t) { return t * 2.0f; })(ones(Shape{2})); },
                                {"scalar", "(2,)"});
}

TEST_CASE("value_and_grad_with_aux returns the auxiliary output") {
  auto f = [](const Tensor& w) { return std::pair{sum(w * w), std::string("aux")}; };
  const auto r = value_and_grad_with_aux(f)(Tensor({3.f}, Shape{1}));
  CHECK(r.value.item() == 9.0f);
  CHECK(r.aux == "aux");
  check_close(r.grad, {6}, Shape{1});
}

TEST_CASE("recording costs nothing outside grad: results are untracked") {
  const Tensor a = pattern(Shape{4, 4});
  CHECK_FALSE((matmul(a, a) + a).is_tracked());
}

#include "weft/losses.hpp"
#include "weft/nn/linear.hpp"

TEST_CASE("gradient of dense + softmax cross-entropy equals its hand derivation") {
  // L = mean_b CE(x_b W + b, y_b); dL/dz = (softmax(z) - onehot(y)) / B, dW = x^T dz, db = sum_b dz.
  const std::int64_t batch = 4, in = 3, classes = 5;
  const Tensor x = pattern(Shape{batch, in}, -1.0f, 1.0f, 3);
  const Tensor labels({0, 4, 2, 2}, Shape{batch});
  const nn::Dense dense{.features = classes};
  const Variables vars = nn::init(dense, Key(0), x);
  auto loss = [&](const Variables& v) { return mean(losses::softmax_cross_entropy(nn::apply(dense, v, x), labels)); };
  const auto [value, g] = value_and_grad(loss)(vars);

  const auto W = vars.at("params/kernel").to_vector(), bias = vars.at("params/bias").to_vector(), xs = x.to_vector();
  const auto ys = labels.to_int_vector();
  std::vector<double> dz(static_cast<std::size_t>(batch * classes));
  double expected_loss = 0;
  for (std::int64_t r = 0; r < batch; ++r) {
    std::vector<double> z(static_cast<std::size_t>(classes));
    double zmax = -1e300;
    for (std::int64_t j = 0; j < classes; ++j) {
      double s = bias[static_cast<std::size_t>(j)];
      for (std::int64_t k = 0; k < in; ++k)
        s += static_cast<double>(xs[static_cast<std::size_t>(r * in + k)]) * W[static_cast<std::size_t>(k * classes + j)];
      z[static_cast<std::size_t>(j)] = s;
      zmax = std::max(zmax, s);
    }
    double denom = 0;
    for (double zj : z) denom += std::exp(zj - zmax);
    expected_loss += (std::log(denom) + zmax - z[static_cast<std::size_t>(ys[static_cast<std::size_t>(r)])]) / batch;
    for (std::int64_t j = 0; j < classes; ++j)
      dz[static_cast<std::size_t>(r * classes + j)] =
          (std::exp(z[static_cast<std::size_t>(j)] - zmax) / denom - (j == ys[static_cast<std::size_t>(r)] ? 1.0 : 0.0)) / batch;
  }
  std::vector<float> dW(static_cast<std::size_t>(in * classes)), db(static_cast<std::size_t>(classes));
  for (std::int64_t k = 0; k < in; ++k)
    for (std::int64_t j = 0; j < classes; ++j) {
      double s = 0;
      for (std::int64_t r = 0; r < batch; ++r)
        s += static_cast<double>(xs[static_cast<std::size_t>(r * in + k)]) * dz[static_cast<std::size_t>(r * classes + j)];
      dW[static_cast<std::size_t>(k * classes + j)] = static_cast<float>(s);
    }
  for (std::int64_t j = 0; j < classes; ++j) {
    double s = 0;
    for (std::int64_t r = 0; r < batch; ++r) s += dz[static_cast<std::size_t>(r * classes + j)];
    db[static_cast<std::size_t>(j)] = static_cast<float>(s);
  }
  CHECK(value.item() == doctest::Approx(expected_loss).epsilon(1e-6));
  CHECK(g.paths() == std::vector<std::string>{"params/bias", "params/kernel"});
  check_close(g.at("params/kernel"), dW, Shape{in, classes}, 1e-7f, 1e-5f);
  check_close(g.at("params/bias"), db, Shape{classes}, 1e-7f, 1e-5f);
}
