#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "testing.hpp"
#include "weft/losses.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_same_on_1_and_2_threads;
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

// ---------------------------------------------------------------- huber, kl, cosine, hinge, smooth_labels

namespace {
/// sum(t * weights) with weights a fixed pattern: a generic scalar read-out for gradient checks.
auto readout(const Tensor& t) { return sum(t * pattern(t.shape(), -1.0f, 1.0f, 9)); }
}  // namespace

TEST_CASE("huber_loss: quadratic within delta, linear beyond, as optax") {
  const Tensor e({-3.f, -1.f, -0.5f, 0.f, 0.5f, 1.f, 2.5f}, Shape{7});
  check_close(losses::huber_loss(e), {2.5f, 0.5f, 0.125f, 0.f, 0.125f, 0.5f, 2.0f}, Shape{7}, 0.0f, 0.0f);
  // delta = 2: 0.5 e^2 up to |e| = 2, then 2 (|e| - 1).
  check_close(losses::huber_loss(Tensor({3.f, 1.f, -2.f}, Shape{3}), {}, 2.0f), {4.f, 0.5f, 2.f}, Shape{3}, 0.0f, 0.0f);
  const Tensor p({1.f, 4.f, -2.f}, Shape{3}), t({0.5f, 1.f, -2.f}, Shape{3});
  check_close(losses::huber_loss(p, t), {0.125f, 2.5f, 0.f}, Shape{3}, 0.0f, 0.0f);
  // The gradient is clip(e, -delta, delta), exactly; its negative for the targets.
  CHECK(grad([](const Tensor& x) { return sum(losses::huber_loss(x)); })(e).to_vector() ==
        std::vector<float>{-1.f, -1.f, -0.5f, 0.f, 0.5f, 1.f, 1.f});
  CHECK(grad([&](const Tensor& x) { return sum(losses::huber_loss(p, x, 2.0f)); })(t).to_vector() ==
        std::vector<float>{-0.5f, -2.f, 0.f});
  const Tensor x = pattern(Shape{2, 5}, -3.0f, 3.0f, 1), y = pattern(Shape{2, 5}, -1.0f, 1.0f, 2);
  check_gradient([&](const Tensor& v) { return readout(losses::huber_loss(v, y)); }, x);
  check_gradient([&](const Tensor& v) { return readout(losses::huber_loss(x, v, 0.5f)); }, y);
  check_gradient([&](const Tensor& v) { return readout(losses::huber_loss(v)); }, x);
}

TEST_CASE("kl_divergence: sum of targets * (log targets - log_predictions) over the last axis") {
  const float l2 = std::log(2.0f);
  const Tensor logp = log(Tensor({0.5f, 0.25f, 0.25f, 0.5f, 0.25f, 0.25f}, Shape{2, 3}));
  const Tensor q({0.25f, 0.25f, 0.5f, 1.f, 0.f, 0.f}, Shape{2, 3});
  // By hand: 0.25 log(1/2) + 0.25 log 1 + 0.5 log 2 = log(2) / 4; and 1 * log(1 / 0.5) = log 2.
  check_close(losses::kl_divergence(logp, q), {0.25f * l2, l2}, Shape{2}, 1e-6f);
  // A zero target contributes 0 even against a log-prediction of -inf (optax: NaN).
  const float inf = std::numeric_limits<float>::infinity();
  check_close(losses::kl_divergence(Tensor({0.f, -inf}, Shape{2}), Tensor({1.f, 0.f}, Shape{2})), {0.f}, Shape{}, 0.0f,
              0.0f);
  // KL(y || softmax(x)) = cross entropy - entropy of y.
  const Tensor logits = pattern(Shape{4, 6}, -2.0f, 2.0f, 3);
  const Tensor y = softmax(pattern(Shape{4, 6}, -1.0f, 1.0f, 4));
  check_close(losses::kl_divergence(log_softmax(logits), y),
              losses::softmax_cross_entropy(logits, y) + sum(y * log(y), -1), 1e-5f);
  // Gradients: -targets for the log-predictions, exactly; log t - log p + 1, or -log p where t = 0.
  CHECK(grad([&](const Tensor& v) { return sum(losses::kl_divergence(v, q)); })(logp).to_vector() ==
        (-q).to_vector());
  const Tensor dq = grad([&](const Tensor& v) { return sum(losses::kl_divergence(logp, v)); })(q);
  check_close(dq, {std::log(0.5f) + 1.f, 1.f, std::log(2.f) + 1.f, std::log(2.f) + 1.f, std::log(4.f), std::log(4.f)},
              Shape{2, 3});
  check_gradient([&](const Tensor& v) { return readout(losses::kl_divergence(v, y)); }, log_softmax(logits));
  check_gradient([&](const Tensor& v) { return readout(losses::kl_divergence(log_softmax(logits), v)); }, y, 1e-3f);
}

TEST_CASE("cosine_similarity and cosine_distance over the last axis, with optax's epsilon") {
  const Tensor p({1.f, 0.f, 3.f, 4.f, 1.f, 1.f}, Shape{3, 2});
  const Tensor t({0.f, 1.f, 4.f, 3.f, -1.f, -1.f}, Shape{3, 2});
  // Orthogonal, (3, 4)·(4, 3) / 25 = 0.96, opposite.
  check_close(losses::cosine_similarity(p, t), {0.f, 0.96f, -1.f}, Shape{3}, 1e-6f);
  check_close(losses::cosine_distance(p, t), {1.f, 0.04f, 2.f}, Shape{3}, 1e-6f);
  check_close(losses::cosine_distance(Tensor({1.f, 2.f, 2.f}, Shape{3}), Tensor({2.f, 4.f, 4.f}, Shape{3})), {0.f},
              Shape{}, 1e-6f);
  // A zero vector: NaN with epsilon 0 (optax's default), and 0 similarity with a positive epsilon,
  // whose norm is then the constant epsilon: d distance / dp = -t / (epsilon |t|).
  const Tensor zero = zeros(Shape{2}), v({3.f, 4.f}, Shape{2});
  CHECK(std::isnan(losses::cosine_distance(zero, v).item()));
  check_close(losses::cosine_distance(zero, v, 0.5f), {1.f}, Shape{}, 0.0f, 0.0f);
  check_close(grad([&](const Tensor& x) { return losses::cosine_distance(x, v, 0.5f); })(zero), {-1.2f, -1.6f},
              Shape{2}, 1e-6f);
  // Scale invariance: the gradient is orthogonal to the predictions.
  const Tensor x = pattern(Shape{3, 5}, -1.0f, 1.0f, 5), y = pattern(Shape{3, 5}, -1.0f, 1.0f, 6);
  const Tensor gx = grad([&](const Tensor& a) { return sum(losses::cosine_distance(a, y)); })(x);
  check_close(sum(gx * x, -1), {0.f, 0.f, 0.f}, Shape{3}, 1e-6f);
  check_gradient([&](const Tensor& a) { return readout(losses::cosine_distance(a, y)); }, x, 1e-3f);
  check_gradient([&](const Tensor& a) { return readout(losses::cosine_similarity(x, a, 0.1f)); }, y, 1e-3f);
  check_gradient([&](const Tensor& a) { return readout(losses::cosine_distance(a, y, 10.0f)); }, x, 1e-3f);
}

TEST_CASE("hinge_loss: max(0, 1 - outputs * targets), with jax's half gradient at the tie") {
  const Tensor out({2.f, 0.5f, -1.f, 1.f, 0.f}, Shape{5});
  const Tensor t({1.f, 1.f, 1.f, 1.f, -1.f}, Shape{5});
  check_close(losses::hinge_loss(out, t), {0.f, 0.5f, 2.f, 0.f, 1.f}, Shape{5}, 0.0f, 0.0f);
  CHECK(grad([&](const Tensor& v) { return sum(losses::hinge_loss(v, t)); })(out).to_vector() ==
        std::vector<float>{0.f, -1.f, -1.f, -0.5f, 1.f});
  CHECK(grad([&](const Tensor& v) { return sum(losses::hinge_loss(out, v)); })(t).to_vector() ==
        std::vector<float>{0.f, -0.5f, 1.f, -0.5f, 0.f});
  const Tensor x = pattern(Shape{2, 4}, -2.0f, 2.0f, 7);
  const Tensor signs({1.f, -1.f, 1.f, 1.f, -1.f, -1.f, 1.f, -1.f}, Shape{2, 4});
  check_gradient([&](const Tensor& v) { return readout(losses::hinge_loss(v, signs)); }, x, 1e-3f);
}

TEST_CASE("smooth_labels: (1 - alpha) * labels + alpha / categories") {
  const Tensor labels = one_hot(Tensor({1, 0}, Shape{2}), 4);
  check_close(losses::smooth_labels(labels, 0.1f), {0.025f, 0.925f, 0.025f, 0.025f, 0.925f, 0.025f, 0.025f, 0.025f},
              Shape{2, 4}, 1e-7f);
  check_close(sum(losses::smooth_labels(labels, 0.3f), -1), {1.f, 1.f}, Shape{2}, 1e-6f);
  check_close(losses::smooth_labels(labels, 0.0f), labels, 0.0f, 0.0f);
  check_close(losses::smooth_labels(labels, 1.0f), std::vector<float>(8, 0.25f), Shape{2, 4}, 0.0f, 0.0f);
  check_close(grad([](const Tensor& l) { return sum(losses::smooth_labels(l, 0.2f)); })(labels),
              std::vector<float>(8, 0.8f), Shape{2, 4}, 1e-7f);
}

TEST_CASE("kl_divergence and cosine_distance are bit-identical on 1 and 2 threads") {
  const Tensor a = pattern(Shape{512, 1000}, -1.0f, 1.0f, 1);
  const Tensor b = softmax(pattern(Shape{512, 1000}, -3.0f, 3.0f, 2));
  auto run = [&] {
    return std::vector<Tensor>{
        losses::kl_divergence(log_softmax(a), b), losses::cosine_distance(a, b),
        grad([&](const Tensor& v) { return readout(losses::kl_divergence(v, b)); })(a),
        grad([&](const Tensor& v) { return readout(losses::cosine_distance(v, b)); })(a),
        grad([&](const Tensor& v) { return readout(losses::cosine_distance(a, v)); })(b)};
  };
  check_same_on_1_and_2_threads(run);
}

TEST_CASE("huber, kl, cosine, hinge and smooth_labels: bad inputs are clear errors") {
  const Tensor f = zeros(Shape{2, 3});
  const Tensor i = Tensor({0, 1, 0, 1, 0, 1}, Shape{2, 3});
  check_throws_with<DTypeError>([&] { (void)losses::huber_loss(i); }, {"weft::losses::huber_loss", "predictions", "int32"});
  check_throws_with<DTypeError>([&] { (void)losses::kl_divergence(f, i); },
                                {"weft::losses::kl_divergence", "targets must be float32", "int32"});
  check_throws_with<DTypeError>([&] { (void)losses::cosine_distance(i, f); }, {"weft::losses::cosine_distance", "int32"});
  check_throws_with<DTypeError>([&] { (void)losses::hinge_loss(f, i); }, {"weft::losses::hinge_loss", "targets", "int32"});
  check_throws_with<DTypeError>([&] { (void)losses::smooth_labels(i, 0.1f); }, {"weft::losses::smooth_labels", "int32"});
  check_throws_with<ShapeError>([&] { (void)losses::kl_divergence(f, zeros(Shape{3, 2})); },
                                {"weft::losses::kl_divergence", "log_predictions (2, 3)", "targets (3, 2)"});
  check_throws_with<ShapeError>([&] { (void)losses::cosine_distance(f, zeros(Shape{2, 1})); },
                                {"weft::losses::cosine_distance", "(2, 3)", "(2, 1)"});
  check_throws_with<ShapeError>([&] { (void)losses::cosine_similarity(Tensor(1.0f), Tensor(1.0f)); },
                                {"cosine_similarity", "last axis"});
  check_throws_with<ShapeError>([&] { (void)losses::huber_loss(f, zeros(Shape{3})); }, {"huber_loss", "(2, 3)", "(3,)"});
  check_throws_with<ShapeError>([&] { (void)losses::hinge_loss(zeros(Shape{4, 1}), zeros(Shape{4})); },
                                {"hinge_loss", "(4, 1)", "(4,)"});
  check_throws_with<ShapeError>([&] { (void)losses::smooth_labels(Tensor(1.0f), 0.1f); }, {"smooth_labels", "categories"});
  check_throws_with<ValueError>([&] { (void)losses::huber_loss(f, {}, 0.0f); }, {"huber_loss", "delta", "positive"});
  check_throws_with<ValueError>([&] { (void)losses::cosine_distance(f, f, -1.0f); }, {"cosine_distance", "epsilon"});
  check_throws_with<ValueError>([&] { (void)losses::smooth_labels(f, 1.5f); }, {"smooth_labels", "alpha", "[0, 1]"});
}
