#include <cmath>
#include <cstdint>
#include <vector>

#include "testing.hpp"
#include "weft/losses.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

// Reference cross entropies in double: rows of `classes` logits.
std::vector<float> integer_reference(const Tensor& logits, const std::vector<std::int32_t>& labels) {
  const auto x = logits.to_vector();
  const auto n = static_cast<std::size_t>(logits.shape()[logits.rank() - 1]);
  std::vector<float> out;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    double m = -INFINITY, s = 0.0;
    for (std::size_t i = 0; i < n; ++i) m = std::max(m, double(x[r * n + i]));
    for (std::size_t i = 0; i < n; ++i) s += std::exp(double(x[r * n + i]) - m);
    out.push_back(static_cast<float>(m + std::log(s) - double(x[r * n + static_cast<std::size_t>(labels[r])])));
  }
  return out;
}

std::vector<float> soft_reference(const Tensor& logits, const Tensor& labels) {
  const auto x = logits.to_vector(), y = labels.to_vector();
  const auto n = static_cast<std::size_t>(logits.shape()[logits.rank() - 1]);
  std::vector<float> out;
  for (std::size_t r = 0; r < x.size() / n; ++r) {
    double m = -INFINITY, s = 0.0, loss = 0.0;
    for (std::size_t i = 0; i < n; ++i) m = std::max(m, double(x[r * n + i]));
    for (std::size_t i = 0; i < n; ++i) s += std::exp(double(x[r * n + i]) - m);
    for (std::size_t i = 0; i < n; ++i) loss -= double(y[r * n + i]) * (double(x[r * n + i]) - m - std::log(s));
    out.push_back(static_cast<float>(loss));
  }
  return out;
}

}  // namespace

TEST_CASE("softmax_cross_entropy: integer labels, by hand and Optax's documented example") {
  const Tensor logits({1.2f, -0.8f, -0.5f, 0.9f, -1.2f, 1.1f}, Shape{2, 3});
  const Tensor labels({0, 1}, Shape{2});
  const Tensor loss = losses::softmax_cross_entropy(logits, labels);
  check_close(loss, integer_reference(logits, {0, 1}), Shape{2}, 1e-6f, 1e-6f);
  check_close(loss, {0.2761f, 2.9518f}, Shape{2}, 1e-4f, 0.0f);
  check_close(losses::softmax_cross_entropy_with_integer_labels(logits, labels), loss);
  // One example: rank-1 logits and a scalar label.
  const Tensor one = losses::softmax_cross_entropy(Tensor({0.0f, 0.0f, 0.0f, 0.0f}, Shape{4}), Tensor({2}, Shape{}));
  check_close(one, {std::log(4.0f)}, Shape{}, 1e-6f);
}

TEST_CASE("softmax_cross_entropy: one-hot labels agree with integer labels; soft labels by hand") {
  const Tensor logits = pattern(Shape{5, 7}, -3.0f, 3.0f, 2);
  const Tensor labels({6, 0, 3, 3, 1}, Shape{5});
  const Tensor by_index = losses::softmax_cross_entropy(logits, labels);
  const Tensor by_one_hot = losses::softmax_cross_entropy(logits, one_hot(labels, 7));
  check_close(by_one_hot, by_index, 1e-6f, 1e-6f);
  check_close(by_index, integer_reference(logits, {6, 0, 3, 3, 1}), Shape{5}, 1e-6f, 1e-6f);

  const Tensor soft({0.2f, 0.5f, 0.3f, 0.0f, 0.1f, 0.9f}, Shape{2, 3});
  const Tensor x({1.2f, -0.8f, -0.5f, 0.9f, -1.2f, 1.1f}, Shape{2, 3});
  check_close(losses::softmax_cross_entropy(x, soft), soft_reference(x, soft), Shape{2}, 1e-6f, 1e-6f);
}

TEST_CASE("softmax_cross_entropy: more classes than vector lanes, batch axes, and the parallel path") {
  const Tensor logits = pattern(Shape{2, 3, 40}, -5.0f, 5.0f, 3);
  const Tensor labels({0, 39, 17, 5, 22, 38}, Shape{2, 3});
  const Tensor loss = losses::softmax_cross_entropy(logits, labels);
  check_close(loss, integer_reference(logits, {0, 39, 17, 5, 22, 38}), Shape{2, 3}, 1e-5f, 1e-5f);
  const Tensor soft = softmax(pattern(Shape{2, 3, 40}, -1.0f, 1.0f, 4));
  check_close(losses::softmax_cross_entropy(logits, soft), soft_reference(logits, soft), Shape{2, 3}, 1e-5f, 1e-5f);

  // 5000 rows of 20: several chunks of rows.
  const Tensor big = pattern(Shape{5000, 20}, -4.0f, 4.0f, 6);
  std::vector<std::int32_t> idx(5000);
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<std::int32_t>((i * 7) % 20);
  check_close(losses::softmax_cross_entropy(big, Tensor(idx, Shape{5000})), integer_reference(big, idx), Shape{5000},
              1e-5f, 1e-5f);
}

TEST_CASE("softmax_cross_entropy: extreme logits are finite and exact") {
  const Tensor logits({1e4f, -1e4f, -1e4f, 1e4f, 1e4f, 1e4f}, Shape{3, 2});
  const Tensor labels({0, 0, 1}, Shape{3});
  const auto loss = losses::softmax_cross_entropy(logits, labels).to_vector();
  CHECK(loss[0] == 0.0f);
  CHECK(loss[1] == 2e4f);
  CHECK(loss[2] == doctest::Approx(std::log(2.0)));
  const auto soft = losses::softmax_cross_entropy(logits, one_hot(labels, 2)).to_vector();
  CHECK(soft[0] == 0.0f);
  CHECK(soft[1] == 2e4f);
  CHECK(soft[2] == doctest::Approx(std::log(2.0)));
  // The gradient of the mean: (softmax - one_hot) / 3, finite.
  const Tensor g = grad([&](const Tensor& x) { return mean(losses::softmax_cross_entropy(x, labels)); })(logits);
  check_close(g, {0.0f, 0.0f, -1.0f / 3, 1.0f / 3, 0.5f / 3, -0.5f / 3}, Shape{3, 2}, 1e-7f, 1e-6f);
  const Tensor gs = grad([&](const Tensor& x) { return mean(losses::softmax_cross_entropy(x, one_hot(labels, 2))); })(logits);
  check_close(gs, g, 1e-7f, 1e-6f);
}

TEST_CASE("softmax_cross_entropy: gradients are softmax - labels, and match finite differences") {
  const Tensor logits = pattern(Shape{4, 5}, -2.0f, 2.0f, 7);
  const Tensor labels({4, 0, 2, 2}, Shape{4});
  const Tensor weights = pattern(Shape{4}, 0.5f, 2.0f, 8);  // a non-uniform incoming gradient
  SUBCASE("closed form") {
    const Tensor g = grad([&](const Tensor& x) { return sum(losses::softmax_cross_entropy(x, labels)); })(logits);
    check_close(g, softmax(logits) - one_hot(labels, 5), 1e-6f, 1e-5f);
  }
  SUBCASE("integer labels, finite differences") {
    check_gradient([&](const Tensor& x) { return sum(losses::softmax_cross_entropy(x, labels) * weights); }, logits);
  }
  SUBCASE("soft labels (not summing to 1): both operands, finite differences") {
    const Tensor soft = pattern(Shape{4, 5}, 0.0f, 1.0f, 9);
    check_gradient([&](const Tensor& x) { return sum(losses::softmax_cross_entropy(x, soft) * weights); }, logits);
    check_gradient([&](const Tensor& y) { return sum(losses::softmax_cross_entropy(logits, y) * weights); }, soft);
  }
}

TEST_CASE("sigmoid_binary_cross_entropy: values, extremes and gradients") {
  const Tensor x({-2.0f, 0.5f, 3.0f, 0.0f}, Shape{2, 2});
  const Tensor z({0.0f, 1.0f, 0.3f, 0.5f}, Shape{2, 2});
  std::vector<float> expected;
  for (std::size_t i = 0; i < 4; ++i) {
    const double xi = x.to_vector()[i], zi = z.to_vector()[i];
    expected.push_back(static_cast<float>(std::log1p(std::exp(xi)) - xi * zi));
  }
  check_close(losses::sigmoid_binary_cross_entropy(x, z), expected, Shape{2, 2}, 1e-6f, 1e-6f);

  const Tensor big({1e4f, -1e4f, 1e4f, -1e4f}, Shape{4});
  const Tensor bz({1.0f, 1.0f, 0.0f, 0.0f}, Shape{4});
  const auto v = losses::sigmoid_binary_cross_entropy(big, bz).to_vector();
  CHECK(v == std::vector<float>{0.0f, 1e4f, 1e4f, 0.0f});
  const Tensor gb = grad([&](const Tensor& t) { return sum(losses::sigmoid_binary_cross_entropy(t, bz)); })(big);
  check_close(gb, {0.0f, -1.0f, 1.0f, 0.0f}, Shape{4}, 0.0f, 0.0f);

  const Tensor w({1.0f, -0.5f, 2.0f, 0.25f}, Shape{2, 2});
  const Tensor gx = grad([&](const Tensor& t) { return sum(losses::sigmoid_binary_cross_entropy(t, z)); })(x);
  check_close(gx, sigmoid(x) - z, 1e-6f, 1e-6f);
  check_gradient([&](const Tensor& t) { return sum(losses::sigmoid_binary_cross_entropy(t, z) * w); }, x);
  check_gradient([&](const Tensor& t) { return sum(losses::sigmoid_binary_cross_entropy(x, t) * w); }, z);
  const Tensor gz = grad([&](const Tensor& t) { return sum(losses::sigmoid_binary_cross_entropy(x, t)); })(z);
  check_close(gz, -x, 0.0f, 0.0f);
}

TEST_CASE("l2_loss and squared_error: values and gradients, with and without targets") {
  const Tensor p({1.0f, 2.0f, -3.0f}, Shape{3});
  const Tensor t({0.5f, 2.0f, 1.0f}, Shape{3});
  check_close(losses::squared_error(p, t), {0.25f, 0.0f, 16.0f}, Shape{3}, 0.0f, 0.0f);
  check_close(losses::l2_loss(p, t), {0.125f, 0.0f, 8.0f}, Shape{3}, 0.0f, 0.0f);
  check_close(losses::squared_error(p), {1.0f, 4.0f, 9.0f}, Shape{3}, 0.0f, 0.0f);
  check_close(losses::l2_loss(p), {0.5f, 2.0f, 4.5f}, Shape{3}, 0.0f, 0.0f);
  const Tensor gp = grad([&](const Tensor& q) { return sum(losses::l2_loss(q, t)); })(p);
  check_close(gp, {0.5f, 0.0f, -4.0f}, Shape{3}, 0.0f, 0.0f);
  check_gradient([&](const Tensor& q) { return sum(losses::squared_error(q, t) * p); }, p);
  check_gradient([&](const Tensor& q) { return sum(losses::l2_loss(p, q) * p); }, t);
}

TEST_CASE("losses: bad inputs are clear errors") {
  const Tensor logits = pattern(Shape{4, 10});
  SUBCASE("labels outside [0, classes) name the value and the position") {
    check_throws_with<ValueError>([&] { (void)losses::softmax_cross_entropy(logits, Tensor({1, 10, 3, 0}, Shape{4})); },
                                  {"softmax_cross_entropy", "label 10", "labels[1]", "[0, 10)"});
    check_throws_with<ValueError>([&] { (void)losses::softmax_cross_entropy(logits, Tensor({1, 2, 3, -1}, Shape{4})); },
                                  {"label -1", "labels[3]"});
    check_throws_with<ValueError>(
        [&] { (void)losses::softmax_cross_entropy(pattern(Shape{2, 3, 5}), Tensor({0, 1, 2, 3, 4, 5}, Shape{2, 3})); },
        {"label 5", "labels[1, 2]", "[0, 5)"});
  }
  SUBCASE("shapes that do not fit name both") {
    check_throws_with<ShapeError>([&] { (void)losses::softmax_cross_entropy(logits, Tensor({1, 2, 3}, Shape{3})); },
                                  {"softmax_cross_entropy", "(3,)", "(4, 10)", "(4,)"});
    check_throws_with<ShapeError>([&] { (void)losses::softmax_cross_entropy(logits, zeros(Shape{4, 9})); },
                                  {"float32 labels (4, 9)", "(4, 10)"});
    check_throws_with<ShapeError>([&] { (void)losses::softmax_cross_entropy(Tensor(1.0f), Tensor({0}, Shape{})); },
                                  {"class axis"});
    check_throws_with<ShapeError>([&] { (void)losses::sigmoid_binary_cross_entropy(zeros(Shape{4, 1}), zeros(Shape{4})); },
                                  {"sigmoid_binary_cross_entropy", "(4, 1)", "(4,)", "broadcast"});
    check_throws_with<ShapeError>([&] { (void)losses::l2_loss(zeros(Shape{3}), zeros(Shape{1})); },
                                  {"l2_loss", "(3,)", "(1,)"});
    check_throws_with<ShapeError>([&] { (void)losses::squared_error(zeros(Shape{2, 3}), zeros(Shape{3, 2})); },
                                  {"squared_error", "(2, 3)", "(3, 2)"});
  }
  SUBCASE("dtypes") {
    check_throws_with<DTypeError>(
        [&] { (void)losses::softmax_cross_entropy(Tensor({1, 2}, Shape{1, 2}), Tensor({0}, Shape{1})); },
        {"logits must be float32"});
    check_throws_with<DTypeError>(
        [&] { (void)losses::softmax_cross_entropy_with_integer_labels(logits, zeros(Shape{4, 10})); },
        {"int32", "softmax_cross_entropy"});
    check_throws_with<DTypeError>(
        [&] { (void)losses::sigmoid_binary_cross_entropy(zeros(Shape{2}), Tensor({0, 1}, Shape{2})); },
        {"labels must be float32", "astype"});
  }
  SUBCASE("empty tensors") {
    check_throws_with<Error>([&] { (void)losses::softmax_cross_entropy(Tensor(), Tensor({0}, Shape{1})); },
                             {"softmax_cross_entropy"});
  }
}
