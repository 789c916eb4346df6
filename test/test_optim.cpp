#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "reference/optim_reference.inc"
#include "testing.hpp"
#include "weft/losses.hpp"
#include "weft/optim.hpp"
#include "weft/variables.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

using Strings = std::vector<std::string>;
using Doubles = std::vector<double>;

// A small params tree: 3 leaves, 9 scalars.
Variables small_params() {
  return Variables::from_leaves({
      {"params/Dense_0/kernel", Tensor({0.5f, -1.0f, 2.0f, 0.25f}, Shape{2, 2})},
      {"params/Dense_0/bias", Tensor({0.1f, -0.2f}, Shape{2})},
      {"params/scale", Tensor({1.5f, -0.5f, 3.0f}, Shape{3})},
  });
}

// Gradients for step k (different each step, some negative, one zero).
Variables small_grads(int k) {
  const float s = 1.0f + 0.5f * static_cast<float>(k);
  return Variables::from_leaves({
      {"params/Dense_0/kernel", Tensor({0.3f * s, -0.7f, 1.1f / s, 0.0f}, Shape{2, 2})},
      {"params/Dense_0/bias", Tensor({-0.05f * s, 2.0f}, Shape{2})},
      {"params/scale", Tensor({0.9f, -1.3f * s, 0.01f}, Shape{3})},
  });
}

// The leaves of a tree as doubles, in sorted path order.
Doubles flat(const Variables& v) {
  Doubles out;
  for (const auto& [path, t] : v.leaves()) {
    if (t.dtype() == DType::int32) {
      for (const std::int32_t x : t.to_int_vector()) out.push_back(x);
    } else {
      for (const float x : t.to_vector()) out.push_back(x);
    }
  }
  return out;
}

void check_values(const Variables& actual, const Doubles& expected, double rtol = 2e-6, double atol = 1e-7) {
  const Doubles got = flat(actual);
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", expected " << expected[i]);
    CHECK(std::fabs(got[i] - expected[i]) <= atol + rtol * std::fabs(expected[i]));
  }
}

std::int32_t count_of(const Variables& state, std::string_view path = "count/count") {
  return state.at(path).values<std::int32_t>()[0];
}

}  // namespace

// ---------------------------------------------------------------- Adam

TEST_CASE("adam: the first three steps against the formulas in double precision") {
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  const auto tx = optim::adam(lr, b1, b2, eps);
  const Variables params = small_params();
  Variables state = tx.init(params);
  CHECK(state.paths() == Strings{"count/count", "mu/params/Dense_0/bias", "mu/params/Dense_0/kernel",
                                 "mu/params/scale", "nu/params/Dense_0/bias", "nu/params/Dense_0/kernel",
                                 "nu/params/scale"});
  CHECK(count_of(state) == 0);
  check_values(state.unprefixed("mu"), Doubles(9, 0.0));

  Doubles m(9, 0.0), v(9, 0.0);
  for (int step = 1; step <= 3; ++step) {
    const Variables grads = small_grads(step);
    const Doubles g = flat(grads);
    Doubles expected(9);
    for (std::size_t i = 0; i < 9; ++i) {
      m[i] = (1 - double(b1)) * g[i] + double(b1) * m[i];
      v[i] = (1 - double(b2)) * g[i] * g[i] + double(b2) * v[i];
      const double m_hat = m[i] / (1 - std::pow(double(b1), step));
      const double v_hat = v[i] / (1 - std::pow(double(b2), step));
      expected[i] = -double(lr) * m_hat / (std::sqrt(v_hat) + double(eps));
    }
    auto [updates, next] = tx.update(grads, state, params);
    INFO("step " << step);
    CHECK(updates.paths() == params.paths());
    check_values(updates, expected);
    check_values(next.unprefixed("mu"), m);
    check_values(next.unprefixed("nu"), v);
    CHECK(count_of(next) == step);
    state = next;
  }
  // The first step of Adam moves every coordinate with a nonzero gradient by about lr.
  auto [first, _] = tx.update(small_grads(0), tx.init(params), params);
  check_values(first, {0.01, -0.01, -0.01, 0.01, -0.01, 0.0, -0.01, 0.01, -0.01}, 1e-5);
}

TEST_CASE("adam: a large tensor takes the parallel path with the same numbers") {
  const std::int64_t n = 100003;  // several chunks, and a ragged last one
  const Tensor g = pattern(Shape{n}, -2.0f, 2.0f, 5);
  const Variables params = Variables::from_leaves({{"params/w", zeros(Shape{n})}});
  const Variables grads = Variables::from_leaves({{"params/w", g}});
  const auto tx = optim::adam(0.5f);
  auto [u1, s1] = tx.update(grads, tx.init(params), params);
  auto [u2, s2] = tx.update(grads, s1, params);
  const auto gv = g.to_vector(), u = u2.at("params/w").to_vector();
  for (const std::int64_t i : {std::int64_t{0}, std::int64_t{32767}, std::int64_t{32768}, std::int64_t{65537}, n - 1}) {
    const double gi = gv[static_cast<std::size_t>(i)];
    const double m = 0.1 * gi * (1 + 0.9), v = 0.001 * gi * gi * (1 + 0.999);
    const double expected = -0.5 * (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    INFO("element " << i);
    CHECK(u[static_cast<std::size_t>(i)] == doctest::Approx(expected).epsilon(1e-5));
  }
}

TEST_CASE("adamw: decoupled weight decay is added to the Adam direction before the learning rate") {
  const float lr = 0.05f, wd = 0.1f;
  const Variables params = small_params();
  const auto adam = optim::adam(lr);
  const auto adamw = optim::adamw(lr, 0.9f, 0.999f, 1e-8f, wd);
  Variables sa = adam.init(params), sw = adamw.init(params);
  CHECK(sa.paths() == sw.paths());
  const Doubles p = flat(params);
  for (int step = 1; step <= 2; ++step) {
    auto [ua, na] = adam.update(small_grads(step), sa, params);
    auto [uw, nw] = adamw.update(small_grads(step), sw, params);
    // The moments are the same; the update differs by exactly -lr * wd * param.
    check_values(nw.unprefixed("mu"), flat(na.unprefixed("mu")), 0.0, 0.0);
    check_values(nw.unprefixed("nu"), flat(na.unprefixed("nu")), 0.0, 0.0);
    const Doubles a = flat(ua);
    Doubles expected(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) expected[i] = a[i] - double(lr) * double(wd) * p[i];
    check_values(uw, expected, 1e-5, 1e-7);
    sa = na;
    sw = nw;
  }
  // With a zero gradient the update is the decay alone.
  const Variables zero = tree_map([](const Tensor& t) { return zeros(t.shape()); }, params);
  auto [u, _] = adamw.update(zero, adamw.init(params), params);
  Doubles decay(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) decay[i] = -double(lr) * double(wd) * p[i];
  check_values(u, decay, 1e-6, 0.0);
  // The default weight decay is Optax's 1e-4.
  auto [ud, __] = optim::adamw(1.0f).update(zero, adamw.init(params), params);
  check_values(ud, [&] {
    Doubles d(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) d[i] = -1e-4 * p[i];
    return d;
  }(), 1e-6, 0.0);
}

// ---------------------------------------------------------------- SGD

TEST_CASE("sgd: plain, with momentum, and with Nesterov momentum, by hand") {
  const Variables params = Variables::from_leaves({{"params/w", Tensor({1.0f, -2.0f}, Shape{2})}});
  const auto grads = [](float a, float b) { return Variables::from_leaves({{"params/w", Tensor({a, b}, Shape{2})}}); };

  SUBCASE("plain: -lr * g, and the state holds only the count") {
    const auto tx = optim::sgd(0.1f);
    Variables s = tx.init(params);
    CHECK(s.paths() == Strings{"count/count"});
    auto [u, s1] = tx.update(grads(1.0f, -3.0f), s, params);
    check_values(u, {-0.1, 0.3});
    CHECK(count_of(s1) == 1);
  }
  SUBCASE("momentum 0.9: t' = g + 0.9 t, update -lr t'") {
    const auto tx = optim::sgd(0.1f, 0.9f);
    Variables s = tx.init(params);
    CHECK(s.paths() == Strings{"count/count", "trace/params/w"});
    auto [u1, s1] = tx.update(grads(1.0f, -3.0f), s, params);  // t = (1, -3)
    check_values(u1, {-0.1, 0.3});
    auto [u2, s2] = tx.update(grads(2.0f, 1.0f), s1, params);  // t = (2 + 0.9, 1 - 2.7) = (2.9, -1.7)
    check_values(s2.unprefixed("trace"), {2.9, -1.7});
    check_values(u2, {-0.29, 0.17});
    auto [u3, s3] = tx.update(grads(0.0f, 0.0f), s2, params);  // t = (2.61, -1.53)
    check_values(u3, {-0.261, 0.153});
    CHECK(count_of(s3) == 3);
  }
  SUBCASE("Nesterov: update -lr (g + 0.9 t')") {
    const auto tx = optim::sgd(0.1f, 0.9f, true);
    Variables s = tx.init(params);
    auto [u1, s1] = tx.update(grads(1.0f, -3.0f), s, params);  // t' = (1, -3); d = (1.9, -5.7)
    check_values(u1, {-0.19, 0.57});
    auto [u2, s2] = tx.update(grads(2.0f, 1.0f), s1, params);  // t' = (2.9, -1.7); d = (4.61, -0.53)
    check_values(s2.unprefixed("trace"), {2.9, -1.7});
    check_values(u2, {-0.461, 0.053});
  }
}

TEST_CASE("schedules are evaluated at the count before it is incremented") {
  const Variables params = Variables::from_leaves({{"params/w", Tensor({0.0f}, Shape{1})}});
  const Variables grads = Variables::from_leaves({{"params/w", Tensor({1.0f}, Shape{1})}});
  std::vector<std::int64_t> seen;
  const auto tx = optim::sgd([&seen](std::int64_t step) {
    seen.push_back(step);
    return 0.5f * static_cast<float>(step + 1);
  });
  Variables s = tx.init(params);
  for (int k = 0; k < 3; ++k) {
    auto [u, next] = tx.update(grads, s, params);
    check_values(u, {-0.5 * (k + 1)});
    s = next;
  }
  CHECK(seen == std::vector<std::int64_t>{0, 1, 2});

  // Adam with a schedule: the first step uses schedule(0).
  const auto adam = optim::adam(optim::linear_schedule(0.0f, 1.0f, 10));
  auto [u0, s1] = adam.update(grads, adam.init(params), params);
  check_values(u0, {0.0});
  auto [u1, s2] = adam.update(grads, s1, params);
  check_values(u1, {-0.1}, 1e-6);
}

// ---------------------------------------------------------------- clipping and chains

TEST_CASE("clip_by_global_norm: unchanged below the threshold, scaled to it above") {
  const Variables g = Variables::from_leaves({{"params/a", Tensor({3.0f}, Shape{1})},
                                              {"params/b", Tensor({0.0f, 4.0f}, Shape{2})}});
  CHECK(optim::global_norm(g) == 5.0f);
  SUBCASE("below: the very same tensors, and no state") {
    const auto tx = optim::clip_by_global_norm(6.0f);
    const Variables s = tx.init(g);
    CHECK(s.empty());
    auto [u, s1] = tx.update(g, s, {});
    CHECK(u.node_identity("params/a") == g.node_identity("params/a"));
    check_values(u, {3.0, 0.0, 4.0}, 0.0, 0.0);
    CHECK(s1.empty());
  }
  SUBCASE("above: (g / norm) * max_norm") {
    auto [u, _] = optim::clip_by_global_norm(1.0f).update(g, {}, {});
    check_values(u, {0.6, 0.0, 0.8}, 1e-7);
    CHECK(optim::global_norm(u) == doctest::Approx(1.0).epsilon(1e-7));
    auto [u2, __] = optim::clip_by_global_norm(2.5f).update(g, {}, {});
    check_values(u2, {1.5, 0.0, 2.0}, 1e-7, 0.0);
  }
  SUBCASE("exactly at the threshold: scaled (by 1), as Optax keeps only a norm below max_norm") {
    auto [u, _] = optim::clip_by_global_norm(5.0f).update(g, {}, {});
    CHECK(u.node_identity("params/a") != g.node_identity("params/a"));
    check_values(u, {3.0, 0.0, 4.0}, 1e-7, 0.0);
  }
  SUBCASE("a large tensor: the norm is summed in chunks, in double") {
    const std::int64_t n = 70001;
    const Variables big = Variables::from_leaves({{"params/w", full(Shape{n}, 0.5f)}});
    CHECK(optim::global_norm(big) == doctest::Approx(0.5 * std::sqrt(double(n))).epsilon(1e-7));
  }
}

TEST_CASE("chain(clip, adam) equals clipping then Adam by hand; the state is nested by position") {
  const Variables params = small_params();
  const auto clip = optim::clip_by_global_norm(0.5f);
  const auto adam = optim::adam(0.01f);
  const auto tx = optim::chain(clip, adam);
  Variables state = tx.init(params);
  CHECK(state.paths() == Strings{"1/count/count", "1/mu/params/Dense_0/bias", "1/mu/params/Dense_0/kernel",
                                 "1/mu/params/scale", "1/nu/params/Dense_0/bias", "1/nu/params/Dense_0/kernel",
                                 "1/nu/params/scale"});
  Variables manual = adam.init(params);
  for (int step = 1; step <= 3; ++step) {
    auto [u, next] = tx.update(small_grads(step), state, params);
    auto [clipped, _] = clip.update(small_grads(step), {}, params);
    auto [expected, manual_next] = adam.update(clipped, manual, params);
    check_values(u, flat(expected), 0.0, 0.0);
    check_values(next.unprefixed("1"), flat(manual_next), 0.0, 0.0);
    CHECK(count_of(next, "1/count/count") == step);
    state = next;
    manual = manual_next;
  }
  // The vector form is the same chain; an empty chain is the identity.
  const auto tx2 = optim::chain(std::vector<optim::GradientTransformation>{clip, adam});
  CHECK(tx2.init(params).paths() == tx.init(params).paths());
  const auto none = optim::chain(std::vector<optim::GradientTransformation>{});
  auto [same, empty_state] = none.update(small_grads(1), none.init(params), params);
  check_values(same, flat(small_grads(1)), 0.0, 0.0);
  CHECK(empty_state.empty());
  // Two stateful parts each keep their own state.
  const auto two = optim::chain(optim::sgd(0.1f, 0.5f), optim::sgd(1.0f));
  CHECK(two.init(params).paths().front() == "0/count/count");
  CHECK(two.init(params).contains("0/trace/params/scale"));
  CHECK(two.init(params).contains("1/count/count"));
}

TEST_CASE("apply_updates adds leaf by leaf") {
  const Variables params = small_params();
  const Variables updates = small_grads(1);
  const Variables out = optim::apply_updates(params, updates);
  const Doubles p = flat(params), u = flat(updates);
  Doubles expected(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) expected[i] = static_cast<float>(static_cast<float>(p[i]) + static_cast<float>(u[i]));
  check_values(out, expected, 0.0, 0.0);
  CHECK(out.paths() == params.paths());
  check_values(params, p, 0.0, 0.0);  // unchanged
}

// ---------------------------------------------------------------- schedules

TEST_CASE("schedules at steps near INT64_MIN and INT64_MAX") {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const auto poly = optim::polynomial_schedule(1.0f, 0.25f, 2.0f, 10, 5);
  CHECK(poly(kMin) == 1.0f);  // before the transition: the initial value
  CHECK(poly(kMax) == 0.25f);
  CHECK(poly(10) == doctest::Approx(0.25 + 0.75 * 0.25));  // halfway: frac 0.5, squared
  const auto linear = optim::linear_schedule(2.0f, 0.0f, 4);
  CHECK(linear(kMin) == 2.0f);
  CHECK(linear(kMax) == 0.0f);
  const auto cosine = optim::cosine_decay_schedule(1.0f, 100, 0.1f);
  CHECK(cosine(kMax) == doctest::Approx(0.1));
  const auto warm = optim::warmup_cosine_decay_schedule(0.0f, 1.0f, 10, 100, 0.0f);
  CHECK(warm(kMin) == 0.0f);
  CHECK(warm(kMax) == 0.0f);
  // Boundaries far below the step: the step since the boundary saturates instead of overflowing.
  const auto joined = optim::join_schedules({optim::constant_schedule(1.0f), optim::linear_schedule(1.0f, 0.0f, 10)}, {kMin});
  CHECK(joined(kMax) == 0.0f);
  CHECK(joined(kMin) == 1.0f);  // at the boundary: the second schedule at its step 0
  CHECK(joined(kMin + 5) == doctest::Approx(0.5));
}

TEST_CASE("schedules against their closed forms") {
  SUBCASE("constant") {
    const auto s = optim::constant_schedule(0.25f);
    CHECK(s(0) == 0.25f);
    CHECK(s(1000000) == 0.25f);
  }
  SUBCASE("linear warm-up, with a late start") {
    const auto s = optim::linear_schedule(0.0f, 1.0f, 10);
    CHECK(s(0) == 0.0f);
    CHECK(s(3) == doctest::Approx(0.3));
    CHECK(s(10) == 1.0f);
    CHECK(s(25) == 1.0f);
    const auto late = optim::linear_schedule(1.0f, 0.5f, 4, 6);
    CHECK(late(0) == 1.0f);
    CHECK(late(6) == 1.0f);
    CHECK(late(7) == doctest::Approx(0.875));
    CHECK(late(10) == 0.5f);
    CHECK(late(100) == 0.5f);
    // As Optax: no transition steps is the constant init value.
    CHECK(optim::linear_schedule(2.0f, 1.0f, 0)(5) == 2.0f);
  }
  SUBCASE("polynomial: Optax's documented example") {
    const auto s = optim::polynomial_schedule(1.0f, 0.01f, 2.0f, 100, 5);
    CHECK(s(0) == doctest::Approx(1.0));
    CHECK(s(5) == doctest::Approx(1.0));
    CHECK(s(6) == doctest::Approx(0.980299));  // 0.99 * 0.99^2 + 0.01
    CHECK(s(104) == doctest::Approx(0.010099));
    CHECK(s(105) == doctest::Approx(0.01));
    CHECK(s(110) == doctest::Approx(0.01));
  }
  SUBCASE("cosine decay, with alpha and exponent") {
    const auto s = optim::cosine_decay_schedule(2.0f, 100);
    CHECK(s(0) == 2.0f);
    CHECK(s(50) == doctest::Approx(1.0));
    CHECK(s(25) == doctest::Approx(2.0 * 0.5 * (1 + std::cos(std::numbers::pi / 4))));
    CHECK(s(100) == doctest::Approx(0.0));
    CHECK(s(1000) == doctest::Approx(0.0));
    const auto a = optim::cosine_decay_schedule(2.0f, 100, 0.1f, 2.0f);
    const double c = 0.5 * (1 + std::cos(std::numbers::pi * 30 / 100));
    CHECK(a(30) == doctest::Approx(2.0 * (0.9 * c * c + 0.1)));
    CHECK(a(100) == doctest::Approx(0.2));
    CHECK(a(500) == doctest::Approx(0.2));
  }
  SUBCASE("warm-up then cosine decay; decay_steps includes the warm-up") {
    const auto s = optim::warmup_cosine_decay_schedule(0.0f, 1.0f, 10, 110, 0.1f);
    CHECK(s(0) == 0.0f);
    CHECK(s(5) == doctest::Approx(0.5));
    CHECK(s(10) == doctest::Approx(1.0));
    const double c = 0.5 * (1 + std::cos(std::numbers::pi * 40 / 100));
    CHECK(s(50) == doctest::Approx(0.9 * c + 0.1));
    CHECK(s(60) == doctest::Approx(0.55));
    CHECK(s(110) == doctest::Approx(0.1));
    CHECK(s(1000) == doctest::Approx(0.1));
    // No warm-up: the cosine from step 0.
    const auto w0 = optim::warmup_cosine_decay_schedule(0.0f, 1.0f, 0, 100);
    CHECK(w0(0) == 1.0f);
    CHECK(w0(50) == doctest::Approx(0.5));
  }
  SUBCASE("join_schedules restarts the count at each boundary") {
    const auto s = optim::join_schedules({optim::constant_schedule(1.0f), optim::linear_schedule(0.0f, 1.0f, 10),
                                          optim::constant_schedule(3.0f)},
                                         {5, 20});
    CHECK(s(4) == 1.0f);
    CHECK(s(5) == 0.0f);
    CHECK(s(8) == doctest::Approx(0.3));
    CHECK(s(19) == 1.0f);
    CHECK(s(20) == 3.0f);
  }
}

// ---------------------------------------------------------------- end to end

TEST_CASE("end to end: Adam fits a linear regression through value_and_grad over a Variables") {
  // y = X w* + b* exactly; the least-squares optimum is w*, b*.
  const std::int64_t n = 64;
  const Tensor x = pattern(Shape{n, 3}, -1.0f, 1.0f, 11);
  const Tensor w_true({1.5f, -2.0f, 0.5f}, Shape{3, 1});
  const Tensor y = matmul(x, w_true) + 0.75f;
  Variables variables = Variables::from_leaves({{"params/Dense_0/kernel", zeros(Shape{3, 1})},
                                                {"params/Dense_0/bias", zeros(Shape{1})}});
  const auto loss_fn = [](const Variables& v, const Tensor& xs, const Tensor& ys) {
    return mean(losses::squared_error(matmul(xs, v.at("params/Dense_0/kernel")) + v.at("params/Dense_0/bias"), ys));
  };
  const auto tx = optim::chain(optim::clip_by_global_norm(10.0f),
                               optim::adam(optim::warmup_cosine_decay_schedule(0.0f, 0.1f, 20, 600, 1e-3f)));
  Variables state = tx.init(variables);
  float first = 0.0f, last = 0.0f;
  for (int step = 0; step < 600; ++step) {
    auto [loss, grads] = value_and_grad(loss_fn)(variables, x, y);
    if (step == 0) first = loss.item();
    last = loss.item();
    auto [updates, next] = tx.update(grads, state, variables);
    variables = optim::apply_updates(variables, updates);
    state = next;
  }
  CHECK(first > 1.0f);
  CHECK(last < 1e-6f);
  check_close(variables.at("params/Dense_0/kernel"), w_true, 1e-3f, 1e-3f);
  check_close(variables.at("params/Dense_0/bias"), {0.75f}, Shape{1}, 1e-3f, 1e-3f);
  CHECK(count_of(state, "1/count/count") == 600);
}

TEST_CASE("end to end: SGD with momentum minimises a quadratic to its known optimum") {
  // f(w) = sum(c * (w - a)^2) with its minimum at a.
  const Tensor a({1.0f, -3.0f, 0.5f}, Shape{3});
  const Tensor c({1.0f, 0.5f, 2.0f}, Shape{3});
  Variables params = Variables::from_leaves({{"params/w", zeros(Shape{3})}});
  const auto f = [&](const Variables& v) { return sum(c * square(v.at("params/w") - a)); };
  for (const bool nesterov : {false, true}) {
    const auto tx = optim::sgd(0.05f, 0.9f, nesterov);
    Variables p = params, s = tx.init(params);
    for (int step = 0; step < 300; ++step) {
      auto [updates, next] = tx.update(grad(f)(p), s, p);
      p = optim::apply_updates(p, updates);
      s = next;
    }
    INFO("nesterov " << nesterov);
    check_close(p.at("params/w"), a, 1e-4f, 1e-4f);
  }
}

// ---------------------------------------------------------------- errors

TEST_CASE("optimizer hyperparameters out of range are clear errors") {
  check_throws_with<ValueError>([] { (void)optim::adam(1e-3f, 1.0f); }, {"adam", "b1", "[0, 1)"});
  check_throws_with<ValueError>([] { (void)optim::adam(1e-3f, 0.9f, -0.1f); }, {"adam", "b2", "[0, 1)"});
  check_throws_with<ValueError>([] { (void)optim::adamw(1e-3f, 0.9f, 1.5f); }, {"adamw", "b2"});
  check_throws_with<ValueError>([] { (void)optim::adam(1e-3f, std::nanf(""), 0.9f); }, {"b1", "nan"});
  check_throws_with<ValueError>([] { (void)optim::adam(1e-3f, 0.9f, 0.999f, -1e-8f); }, {"eps", "non-negative"});
  check_throws_with<ValueError>([] { (void)optim::adamw(1e-3f, 0.9f, 0.999f, 1e-8f, -0.01f); },
                                {"adamw", "weight_decay", "-0.01"});
  check_throws_with<ValueError>([] { (void)optim::clip_by_global_norm(0.0f); }, {"clip_by_global_norm", "max_norm", "positive"});
  check_throws_with<ValueError>([] { (void)optim::clip_by_global_norm(-1.0f); }, {"max_norm", "-1"});
  check_throws_with<ValueError>([] { (void)optim::sgd(0.1f, -0.9f); }, {"sgd", "momentum"});
  check_throws_with<ValueError>([] { (void)optim::sgd(std::nanf("")); }, {"learning rate", "nan"});
  check_throws_with<ValueError>([] { (void)optim::cosine_decay_schedule(1.0f, 0); }, {"decay_steps", "positive"});
  check_throws_with<ValueError>([] { (void)optim::warmup_cosine_decay_schedule(0.0f, 1.0f, 100, 100); },
                                {"decay_steps (100)", "warmup_steps (100)"});
  check_throws_with<ValueError>([] { (void)optim::join_schedules({optim::constant_schedule(1.0f)}, {3}); },
                                {"join_schedules", "one boundary fewer"});
  check_throws_with<ValueError>([] { (void)optim::adam(optim::Schedule()); }, {"schedule", "empty"});
  check_throws_with<ValueError>([] { (void)optim::chain(optim::adam(0.1f), optim::GradientTransformation{}); },
                                {"chain", "part 1"});
}

TEST_CASE("the learning rate takes a float, a double, an int, a Schedule or any callable") {
  const Variables params = Variables::from_leaves({{"params/w", Tensor({0.0f}, Shape{1})}});
  const Variables grads = Variables::from_leaves({{"params/w", Tensor({2.0f}, Shape{1})}});
  const auto first_update = [&](const optim::GradientTransformation& tx) {
    return tx.update(grads, tx.init(params), params).first.at("params/w").item();
  };
  CHECK(first_update(optim::sgd(0.5f)) == -1.0f);
  CHECK(first_update(optim::sgd(0.25)) == -0.5f);
  CHECK(first_update(optim::sgd(1)) == -2.0f);
  CHECK(first_update(optim::sgd(optim::constant_schedule(0.5f))) == -1.0f);
  CHECK(first_update(optim::sgd([](std::int64_t) { return 0.5; })) == -1.0f);
  const optim::LearningRate rate = 0.5f;
  CHECK(rate.is_constant());
  CHECK(rate.at(7, "test") == 0.5f);
}

TEST_CASE("a schedule that gives NaN is an error naming the step") {
  const Variables params = small_params();
  const auto tx = optim::adam([](std::int64_t step) { return step < 2 ? 1e-3f : std::nanf(""); });
  Variables s = tx.init(params);
  for (int k = 0; k < 2; ++k) s = tx.update(small_grads(k), s, params).second;
  check_throws_with<ValueError>([&] { (void)tx.update(small_grads(2), s, params); },
                                {"adam", "schedule", "nan", "step 2"});
  const auto inf = optim::sgd([](std::int64_t) { return std::numeric_limits<float>::infinity(); });
  check_throws_with<ValueError>([&] { (void)inf.update(small_grads(0), inf.init(params), params); },
                                {"sgd", "inf", "step 0"});
}

TEST_CASE("params, gradients and state of different structure name the path") {
  const Variables params = small_params();
  const auto tx = optim::adam(1e-3f);
  const Variables state = tx.init(params);
  const Variables fewer =
      Variables::from_leaves({{"params/Dense_0/bias", zeros(Shape{2})}, {"params/scale", zeros(Shape{3})}});
  check_throws_with<KeyError>([&] { (void)tx.update(fewer, state, params); },
                              {"adam", "\"params/Dense_0/kernel\"", "the state's \"mu\"", "not in the gradients"});
  const Variables renamed = small_grads(1).set("params/extra", zeros(Shape{1}));
  check_throws_with<KeyError>([&] { (void)tx.update(renamed, state, params); }, {"\"params/extra\""});
  // The same paths but another shape.
  const Variables reshaped = small_grads(1).set("params/scale", zeros(Shape{4}));
  check_throws_with<ShapeError>([&] { (void)tx.update(reshaped, state, params); },
                                {"\"params/scale\"", "(4,)", "(3,)"});
  // A state from another optimizer, or none.
  check_throws_with<KeyError>([&] { (void)tx.update(small_grads(1), Variables(), params); },
                              {"adam", "count/count", "init"});
  check_throws_with<KeyError>([&] { (void)tx.update(small_grads(1), optim::sgd(0.1f).init(params), params); },
                              {"adam", "\"mu\""});
  // AdamW needs the params, of the gradients' structure.
  const auto w = optim::adamw(1e-3f);
  check_throws_with<ValueError>([&] { (void)w.update(small_grads(1), w.init(params), {}); }, {"adamw", "params"});
  check_throws_with<KeyError>([&] { (void)w.update(small_grads(1), w.init(params), params.set("params/z", zeros(Shape{1}))); },
                              {"adamw", "\"params/z\""});
  // apply_updates.
  check_throws_with<KeyError>([&] { (void)optim::apply_updates(params, fewer); },
                              {"apply_updates", "\"params/Dense_0/kernel\"", "the params", "not in the updates"});
  check_throws_with<ShapeError>([&] { (void)optim::apply_updates(params, reshaped); },
                                {"apply_updates", "\"params/scale\"", "(3,)", "(4,)"});
  check_throws_with<DTypeError>(
      [&] { (void)optim::apply_updates(params, small_grads(1).set("params/scale", Tensor({1, 2, 3}, Shape{3}))); },
      {"apply_updates", "\"params/scale\"", "int32"});
  // The whole variables (params and batch_stats) against gradients of the params: the message says so.
  const Variables with_stats = params.merge(Variables::from_leaves({{"batch_stats/mean", zeros(Shape{2})}}));
  check_throws_with<KeyError>([&] { (void)tx.update(small_grads(1), tx.init(with_stats), params); },
                              {"\"batch_stats/mean\"", "variables.collection(\"params\")"});
  // SGD with momentum checks its trace the same way.
  const auto m = optim::sgd(0.1f, 0.9f);
  check_throws_with<KeyError>([&] { (void)m.update(renamed, m.init(params), params); }, {"sgd", "\"params/extra\""});
}

TEST_CASE("optimizer updates are not differentiable: a tracked gradient is an error, not a silent constant") {
  const Variables params = small_params();
  const auto tx = optim::sgd(0.1f);
  const auto f = [&](const Variables& p) {
    auto [u, _] = tx.update(p, tx.init(p), p);
    return sum(u.at("params/scale"));
  };
  check_throws_with<Error>([&] { (void)grad(f)(params); }, {"sgd", "recorded", "weft::grad"});
  // apply_updates is: it records params + updates.
  const Variables upd = small_grads(1);
  const Variables g = grad([&](const Variables& p) { return sum(optim::apply_updates(p, upd).at("params/scale")); })(params);
  check_close(g.at("params/scale"), {1.0f, 1.0f, 1.0f}, Shape{3});
}

TEST_CASE("the step count saturates instead of overflowing") {
  const Variables params = small_params();
  const auto tx = optim::adam(1e-3f);
  Tensor big = full(Shape{}, std::numeric_limits<std::int32_t>::max());
  const Variables state = tx.init(params).set("count/count", big);
  auto [u, next] = tx.update(small_grads(1), state, params);
  CHECK(count_of(next) == std::numeric_limits<std::int32_t>::max());
  for (const double x : flat(u)) CHECK(std::isfinite(x));
}

// ================================================================ Optax's breadth: schedules

TEST_CASE("exponential_decay: continuous, staircase, delayed, and bounded by end_value") {
  const auto s = optim::exponential_decay(1.0f, 10, 0.5f);
  CHECK(s(0) == 1.0f);
  CHECK(s(10) == doctest::Approx(0.5));
  CHECK(s(5) == doctest::Approx(std::pow(0.5, 0.5)));
  CHECK(s(25) == doctest::Approx(std::pow(0.5, 2.5)));
  const auto stairs = optim::exponential_decay(2.0f, 10, 0.5f, 0, true);
  CHECK(stairs(9) == 2.0f);
  CHECK(stairs(10) == doctest::Approx(1.0));
  CHECK(stairs(19) == doctest::Approx(1.0));
  CHECK(stairs(20) == doctest::Approx(0.5));
  const auto late = optim::exponential_decay(1.0f, 4, 0.1f, 6);
  CHECK(late(0) == 1.0f);
  CHECK(late(6) == 1.0f);
  CHECK(late(8) == doctest::Approx(std::pow(0.1, 0.5)));
  // end_value: a floor when decaying, a ceiling when growing.
  const auto floor = optim::exponential_decay(1.0f, 1, 0.5f, 0, false, 0.2f);
  CHECK(floor(2) == doctest::Approx(0.25));
  CHECK(floor(3) == doctest::Approx(0.2));
  CHECK(floor(100) == doctest::Approx(0.2));
  const auto ceiling = optim::exponential_decay(1.0f, 1, 2.0f, 0, false, 5.0f);
  CHECK(ceiling(2) == doctest::Approx(4.0));
  CHECK(ceiling(3) == doctest::Approx(5.0));
  // As Optax: no transition steps, or a zero rate, is the constant init value.
  CHECK(optim::exponential_decay(3.0f, 0, 0.5f)(100) == 3.0f);
  CHECK(optim::exponential_decay(3.0f, 10, 0.0f)(100) == 3.0f);
}

TEST_CASE("piecewise_constant_schedule and piecewise_interpolate_schedule: Optax's documented examples") {
  const auto pc = optim::piecewise_constant_schedule(1.0f, {{100, 0.1f}, {200, 0.01f}});
  CHECK(pc(50) == 1.0f);
  CHECK(pc(99) == 1.0f);
  CHECK(pc(100) == doctest::Approx(0.1));
  CHECK(pc(150) == doctest::Approx(0.1));
  CHECK(pc(250) == doctest::Approx(0.001));
  CHECK(optim::piecewise_constant_schedule(0.5f)(7) == 0.5f);

  const auto lin = optim::piecewise_interpolate_schedule("linear", 1.0f, {{4, 0.1f}, {8, 0.01f}});
  const std::vector<double> expected{1.0, 0.55, 0.1, 0.0505, 0.001, 0.001};
  for (int i = 0; i < 6; ++i) {
    INFO("step " << 2 * i);
    CHECK(lin(2 * i) == doctest::Approx(expected[static_cast<std::size_t>(i)]));
  }
  // Cosine: end + (start - end) / 2 * (cos(pi * pct) + 1) between the boundary values.
  const auto cos = optim::piecewise_interpolate_schedule("cosine", 2.0f, {{10, 0.5f}});
  CHECK(cos(0) == doctest::Approx(2.0));
  CHECK(cos(5) == doctest::Approx(1.5));
  CHECK(cos(3) == doctest::Approx(1.0 + 0.5 * (std::cos(std::numbers::pi * 0.3) + 1)));
  CHECK(cos(10) == doctest::Approx(1.0));
  CHECK(cos(1000) == doctest::Approx(1.0));
}

TEST_CASE("warmup_exponential_decay_schedule and sgdr_schedule join their parts") {
  const auto w = optim::warmup_exponential_decay_schedule(0.0f, 1.0f, 10, 5, 0.5f, 0, false, 0.1f);
  CHECK(w(0) == 0.0f);
  CHECK(w(5) == doctest::Approx(0.5));
  CHECK(w(10) == doctest::Approx(1.0));
  CHECK(w(15) == doctest::Approx(0.5));
  CHECK(w(20) == doctest::Approx(0.25));
  CHECK(w(1000) == doctest::Approx(0.1));
  // Two cycles: each a warm-up and a cosine, the second restarting at step 100.
  const auto sgdr = optim::sgdr_schedule({{.init_value = 0.0f, .peak_value = 1.0f, .warmup_steps = 10, .decay_steps = 100},
                                          {.init_value = 0.0f, .peak_value = 0.5f, .warmup_steps = 5, .decay_steps = 50}});
  const auto first = optim::warmup_cosine_decay_schedule(0.0f, 1.0f, 10, 100);
  const auto second = optim::warmup_cosine_decay_schedule(0.0f, 0.5f, 5, 50);
  for (const std::int64_t step : {0, 5, 10, 50, 99}) CHECK(sgdr(step) == first(step));
  for (const std::int64_t step : {100, 103, 105, 120, 149, 150, 500}) CHECK(sgdr(step) == second(step - 100));
  CHECK(sgdr(105) == doctest::Approx(0.5));
  check_throws_with<ValueError>([] { (void)optim::sgdr_schedule({}); }, {"sgdr_schedule", "no cycles"});
  check_throws_with<ValueError>([] { (void)optim::piecewise_constant_schedule(1.0f, {{3, -0.5f}}); },
                                {"piecewise_constant_schedule", "non-negative"});
  check_throws_with<ValueError>([] { (void)optim::piecewise_interpolate_schedule("cubic", 1.0f); },
                                {"\"cubic\"", "\"linear\" or \"cosine\""});
}

// ================================================================ building blocks

TEST_CASE("clip, clip_by_block_rms, scale, scale_by_schedule and add_decayed_weights by hand") {
  const Variables g = Variables::from_leaves({{"params/a", Tensor({3.0f, -0.5f}, Shape{2})},
                                              {"params/b", Tensor({0.1f, -0.2f, 0.0f, 0.3f}, Shape{4})}});
  SUBCASE("clip: elementwise to [-max_delta, max_delta], no state") {
    const auto tx = optim::clip(0.25f);
    CHECK(tx.init(g).empty());
    auto [u, s] = tx.update(g, {}, {});
    check_values(u, {0.25, -0.25, 0.1, -0.2, 0.0, 0.25}, 1e-7, 0.0);
    CHECK(u.at("params/b").to_vector() == std::vector<float>{0.1f, -0.2f, 0.0f, 0.25f});  // exactly
    CHECK(s.empty());
  }
  SUBCASE("clip_by_block_rms: each leaf divided by max(1, rms / threshold)") {
    auto [u, _] = optim::clip_by_block_rms(1.0f).update(g, {}, {});
    const double rms_a = std::sqrt((9.0 + 0.25) / 2);  // 2.15: clipped; rms_b = 0.187: kept
    check_values(u, {3.0 / rms_a, -0.5 / rms_a, 0.1, -0.2, 0.0, 0.3}, 1e-6);
    CHECK(std::sqrt((std::pow(flat(u)[0], 2) + std::pow(flat(u)[1], 2)) / 2) == doctest::Approx(1.0));
  }
  SUBCASE("scale and scale_by_schedule (the schedule at the count before the update, not negated)") {
    auto [u, _] = optim::scale(-2.0f).update(g, {}, {});
    check_values(u, {-6.0, 1.0, -0.2, 0.4, 0.0, -0.6}, 1e-7);
    const auto tx = optim::scale_by_schedule([](std::int64_t step) { return 0.5f * static_cast<float>(step + 1); });
    Variables s = tx.init(g);
    CHECK(s.paths() == Strings{"count/count"});
    auto [u1, s1] = tx.update(g, s, {});
    check_values(u1, {1.5, -0.25, 0.05, -0.1, 0.0, 0.15}, 1e-7);
    auto [u2, s2] = tx.update(g, s1, {});
    check_values(u2, {3.0, -0.5, 0.1, -0.2, 0.0, 0.3}, 1e-7);
    CHECK(count_of(s2) == 2);
  }
  SUBCASE("add_decayed_weights: u + wd * p, with a schedule, and with a mask") {
    const Variables p = Variables::from_leaves({{"params/a", Tensor({1.0f, 2.0f}, Shape{2})},
                                                {"params/b", Tensor({-1.0f, 0.0f, 1.0f, 2.0f}, Shape{4})}});
    const auto tx = optim::add_decayed_weights(0.5f);
    CHECK(tx.init(p).empty());
    auto [u, _] = tx.update(g, {}, p);
    check_values(u, {3.5, 0.5, -0.4, -0.2, 0.5, 1.3}, 1e-7);
    check_throws_with<ValueError>([&] { (void)tx.update(g, {}, {}); }, {"add_decayed_weights", "params"});
    const auto sched = optim::add_decayed_weights(optim::linear_schedule(0.0f, 1.0f, 2));
    Variables s = sched.init(p);
    CHECK(s.paths() == Strings{"count/count"});
    auto [u0, s1] = sched.update(g, s, p);  // weight decay 0
    check_values(u0, flat(g), 0.0, 0.0);
    auto [u1, __] = sched.update(g, s1, p);  // weight decay 0.5
    check_values(u1, {3.5, 0.5, -0.4, -0.2, 0.5, 1.3}, 1e-7);
    // Only "params/b" decays; the mask wraps the (empty) state as Optax's MaskedState.
    const auto only_b = optim::add_decayed_weights(optim::linear_schedule(0.5f, 0.5f, 1),
                                                   [](std::string_view path) { return path == "params/b"; });
    CHECK(only_b.init(p).paths() == Strings{"inner_state/count/count"});
    auto [ub, sb] = only_b.update(g, only_b.init(p), p);
    check_values(ub, {3.0, -0.5, -0.4, -0.2, 0.5, 1.3}, 1e-7);
    CHECK(count_of(sb, "inner_state/count/count") == 1);
  }
}

// ================================================================ optimizers against the NumPy reference

namespace {

namespace ref = weft_optim_reference;

Variables factored_params() {
  const auto t = [](std::span<const float> v, Shape shape) { return Tensor(std::vector<float>(v.begin(), v.end()), shape); };
  return Variables::from_leaves({{"params/a", t(ref::factored_param_a, Shape{3, 2, 4})},
                                 {"params/b", t(ref::factored_param_b, Shape{3, 2})},
                                 {"params/c", t(ref::factored_param_c, Shape{3})}});
}

Variables factored_grads(int k) {
  const auto t = [](std::span<const float> v, Shape shape) { return Tensor(std::vector<float>(v.begin(), v.end()), shape); };
  const float* a[] = {ref::factored_grad1_a, ref::factored_grad2_a, ref::factored_grad3_a};
  const float* b[] = {ref::factored_grad1_b, ref::factored_grad2_b, ref::factored_grad3_b};
  const float* c[] = {ref::factored_grad1_c, ref::factored_grad2_c, ref::factored_grad3_c};
  const auto i = static_cast<std::size_t>(k - 1);
  return Variables::from_leaves({{"params/a", t({a[i], 24}, Shape{3, 2, 4})},
                                 {"params/b", t({b[i], 6}, Shape{3, 2})},
                                 {"params/c", t({c[i], 3}, Shape{3})}});
}

/// Three steps of tx from `params` with grads_of(1..3), the params moved by each step's updates, against
/// the reference script's updates (steps 1, 2, 3 concatenated).
template <std::size_t N>
void check_reference(const optim::GradientTransformation& tx, Variables params, Variables (*grads_of)(int),
                     const float (&expected)[N], double rtol = 2e-5, double atol = 1e-6) {
  Variables state = tx.init(params);
  Doubles got;
  for (int k = 1; k <= 3; ++k) {
    auto [updates, next] = tx.update(grads_of(k), state, params);
    for (const double x : flat(updates)) got.push_back(x);
    params = optim::apply_updates(params, updates);
    state = next;
  }
  REQUIRE(got.size() == N);
  for (std::size_t i = 0; i < N; ++i) {
    INFO("element " << i << " (step " << 1 + i / (N / 3) << "): got " << got[i] << ", expected " << expected[i]);
    CHECK(std::fabs(got[i] - expected[i]) <= atol + rtol * std::fabs(double(expected[i])));
  }
}

}  // namespace

TEST_CASE("rmsprop against the reference (test/reference/optim_reference.py): plain, centred, momentum") {
  check_reference(optim::rmsprop(0.01f), small_params(), small_grads, ref::rmsprop_default);
  check_reference(optim::rmsprop(0.01f, 0.9f, 1e-8f, 0.0f, true, true, 0.9f, true), small_params(), small_grads,
                  ref::rmsprop_centered_nesterov);
  check_reference(optim::rmsprop(0.01f, 0.95f, 1e-6f, 0.1f, false, false, 0.5f, false, true), small_params(),
                  small_grads, ref::rmsprop_bias_corrected);
  const Variables params = small_params();
  CHECK(optim::rmsprop(0.01f).init(params).paths() ==
        Strings{"count/count", "nu/params/Dense_0/bias", "nu/params/Dense_0/kernel", "nu/params/scale"});
  const Variables full = optim::rmsprop(0.01f, 0.9f, 1e-8f, 0.5f, true, true, 0.9f).init(params);
  CHECK(full.contains("mu/params/scale"));
  CHECK(full.contains("trace/params/scale"));
  CHECK(full.at("nu/params/scale").to_vector() == std::vector<float>{0.5f, 0.5f, 0.5f});
  // The first plain step by hand: -lr g / sqrt(0.1 g^2 + eps) = -lr sign(g) sqrt(10).
  auto [u, _] = optim::rmsprop(0.01f).update(small_grads(0), optim::rmsprop(0.01f).init(params), params);
  CHECK(flat(u)[0] == doctest::Approx(0.01 * std::sqrt(10.0)).epsilon(1e-4));
}

TEST_CASE("adagrad, lion and lamb against the reference") {
  check_reference(optim::adagrad(0.1f), small_params(), small_grads, ref::adagrad_default);
  check_reference(optim::lion(0.01f, 0.9f, 0.99f, 0.1f), small_params(), small_grads, ref::lion_decay);
  check_reference(optim::lion(0.01f, 0.9f, 0.99f, 0.1f, [](std::string_view p) { return !p.ends_with("/bias"); }),
                  small_params(), small_grads, ref::lion_masked);
  check_reference(optim::lamb(0.01f, 0.9f, 0.999f, 1e-6f, 0.0f, 0.01f), small_params(), small_grads, ref::lamb_decay);
  const Variables params = small_params();
  CHECK(optim::adagrad(0.1f).init(params).at("sum_of_squares/params/scale").to_vector() ==
        std::vector<float>{0.1f, 0.1f, 0.1f});
  CHECK(optim::lion(0.1f).init(params).paths() ==
        Strings{"count/count", "mu/params/Dense_0/bias", "mu/params/Dense_0/kernel", "mu/params/scale"});
  CHECK(optim::lamb(0.1f).init(params).paths() == optim::adam(0.1f).init(params).paths());
  // Lion's first step without decay: -lr * sign(g), zero where g is zero.
  auto [u, _] = optim::lion(0.5f, 0.9f, 0.99f, 0.0f).update(small_grads(1), optim::lion(0.5f).init(params), params);
  check_values(u, {0.5, -0.5, -0.5, 0.5, -0.5, 0.0, -0.5, 0.5, -0.5}, 0.0, 0.0);
}

TEST_CASE("adafactor against the reference: unfactored defaults, and factored leaves of rank 2 and 3") {
  check_reference(optim::adafactor(), small_params(), small_grads, ref::adafactor_default);
  optim::AdafactorOptions o;
  o.learning_rate = 0.1f;
  o.min_dim_size_to_factor = 2;
  o.momentum = 0.9f;
  o.weight_decay_rate = 0.01f;
  check_reference(optim::adafactor(o), factored_params(), factored_grads, ref::adafactor_factored, 5e-5, 1e-6);
  // The state: rows and columns for the factored leaves, a full moment for the vector, (1,) where unused.
  const Variables s = optim::adafactor(o).init(factored_params());
  CHECK(s.at("v_row/params/a").shape() == Shape{3, 2});  // (3, 2, 4): d1 = 0, d0 = 2
  CHECK(s.at("v_col/params/a").shape() == Shape{2, 4});
  CHECK(s.at("v/params/a").shape() == Shape{1});
  CHECK(s.at("v_row/params/b").shape() == Shape{2});  // (3, 2): d1 = 1, d0 = 0
  CHECK(s.at("v_col/params/b").shape() == Shape{3});
  CHECK(s.at("v_row/params/c").shape() == Shape{1});
  CHECK(s.at("v/params/c").shape() == Shape{3});
  CHECK(s.contains("ema/params/b"));
  CHECK(s.contains("count/count"));
  CHECK(!optim::adafactor().init(factored_params()).contains("ema/params/b"));
  CHECK(optim::adafactor().init(factored_params()).at("v/params/a").shape() == Shape{3, 2, 4});  // 128: unfactored
}

// ================================================================ masks and partitions

TEST_CASE("masked: the inner transformation on the selected leaves only, the others unchanged") {
  const Variables params = small_params();
  const auto kernels = [](std::string_view path) { return path.ends_with("/kernel"); };
  const auto tx = optim::masked(optim::adam(0.1f), kernels);
  Variables state = tx.init(params);
  CHECK(state.paths() == Strings{"inner_state/count/count", "inner_state/mu/params/Dense_0/kernel",
                                 "inner_state/nu/params/Dense_0/kernel"});
  const auto adam = optim::adam(0.1f);
  const Variables kernel_params = params.subtree("params/Dense_0/kernel");
  Variables adam_state = adam.init(kernel_params);
  for (int step = 1; step <= 2; ++step) {
    const Variables g = small_grads(step);
    auto [u, next] = tx.update(g, state, params);
    auto [ua, na] = adam.update(g.subtree("params/Dense_0/kernel"), adam_state, kernel_params);
    CHECK(u.paths() == params.paths());
    check_values(u.subtree("params/Dense_0/kernel"), flat(ua), 0.0, 0.0);
    CHECK(u.node_identity("params/scale") == g.node_identity("params/scale"));
    CHECK(u.node_identity("params/Dense_0/bias") == g.node_identity("params/Dense_0/bias"));
    check_values(next.unprefixed("inner_state"), flat(na), 0.0, 0.0);
    state = next;
    adam_state = na;
  }
  // A tree of flags, with a prefix: everything under "params/Dense_0" but not "params/scale".
  const Variables flags = Variables::from_leaves({{"params/Dense_0", full(Shape{}, 1)}, {"params/scale", full(Shape{}, 0)}});
  const auto by_tree = optim::masked(optim::sgd(1.0f, 0.5f), flags);
  CHECK(by_tree.init(params).paths() ==
        Strings{"inner_state/count/count", "inner_state/trace/params/Dense_0/bias", "inner_state/trace/params/Dense_0/kernel"});
  auto [u, _] = by_tree.update(small_grads(1), by_tree.init(params), params);
  const Doubles g = flat(small_grads(1));
  check_values(u, {-g[0], -g[1], -g[2], -g[3], -g[4], -g[5], g[6], g[7], g[8]}, 0.0, 0.0);
  // A tree that misses a leaf, or a flag that is not a scalar.
  const auto partial = optim::masked(optim::sgd(1.0f), Variables::from_leaves({{"params/scale", full(Shape{}, 1)}}));
  check_throws_with<KeyError>([&] { (void)partial.init(params); }, {"masked", "\"params/Dense_0/bias\"", "no flag"});
  check_throws_with<ValueError>([] { (void)optim::Mask(Variables::from_leaves({{"params/a", zeros(Shape{2})}})); },
                                {"Mask", "\"params/a\"", "one scalar"});
}

TEST_CASE("adamw's mask: no weight decay on biases and norm scales") {
  const Variables params = small_params();
  const optim::Mask decay_kernels = [](std::string_view path) {
    return !path.ends_with("/bias") && !path.ends_with("/scale");
  };
  const float lr = 0.05f, wd = 0.1f;
  const auto masked_w = optim::adamw(lr, 0.9f, 0.999f, 1e-8f, wd, decay_kernels);
  const auto plain = optim::adam(lr);
  const auto full_w = optim::adamw(lr, 0.9f, 0.999f, 1e-8f, wd);
  CHECK(masked_w.init(params).paths() == plain.init(params).paths());
  auto [um, _] = masked_w.update(small_grads(1), masked_w.init(params), params);
  auto [ua, __] = plain.update(small_grads(1), plain.init(params), params);
  auto [uw, ___] = full_w.update(small_grads(1), full_w.init(params), params);
  check_values(um.subtree("params/Dense_0/bias"), flat(ua.subtree("params/Dense_0/bias")), 0.0, 0.0);
  check_values(um.subtree("params/scale"), flat(ua.subtree("params/scale")), 0.0, 0.0);
  check_values(um.subtree("params/Dense_0/kernel"), flat(uw.subtree("params/Dense_0/kernel")), 0.0, 0.0);
}

TEST_CASE("multi_transform: Adam on the kernels, SGD elsewhere, each with its own state") {
  const Variables params = small_params();
  const auto tx = optim::multi_transform(
      {{"adam", optim::adam(0.1f)}, {"sgd", optim::sgd(0.5f, 0.9f)}},
      [](std::string_view path) { return path.ends_with("/kernel") ? "adam" : "sgd"; });
  Variables state = tx.init(params);
  CHECK(state.paths() == Strings{"inner_states/adam/inner_state/count/count",
                                 "inner_states/adam/inner_state/mu/params/Dense_0/kernel",
                                 "inner_states/adam/inner_state/nu/params/Dense_0/kernel",
                                 "inner_states/sgd/inner_state/count/count",
                                 "inner_states/sgd/inner_state/trace/params/Dense_0/bias",
                                 "inner_states/sgd/inner_state/trace/params/scale"});
  const auto adam_part = optim::masked(optim::adam(0.1f), [](std::string_view p) { return p.ends_with("/kernel"); });
  const auto sgd_part = optim::masked(optim::sgd(0.5f, 0.9f), [](std::string_view p) { return !p.ends_with("/kernel"); });
  Variables sa = adam_part.init(params), ss = sgd_part.init(params);
  for (int step = 1; step <= 3; ++step) {
    auto [u, next] = tx.update(small_grads(step), state, params);
    auto [u1, na] = adam_part.update(small_grads(step), sa, params);
    auto [u2, ns] = sgd_part.update(u1, ss, params);
    check_values(u, flat(u2), 0.0, 0.0);
    state = next;
    sa = na;
    ss = ns;
  }
  check_values(state.unprefixed("inner_states/sgd"), flat(ss), 0.0, 0.0);
  // Labels by prefix; a label without a transformation names the leaf.
  const auto by_prefix = optim::multi_transform({{"frozen", optim::scale(0.0f)}, {"train", optim::sgd(1.0f)}},
                                                std::map<std::string, std::string>{{"params", "train"},
                                                                                   {"params/Dense_0", "frozen"}});
  auto [u, _] = by_prefix.update(small_grads(1), by_prefix.init(params), params);
  const Doubles g = flat(small_grads(1));
  check_values(u, {0, 0, 0, 0, 0, 0, -g[6], -g[7], -g[8]}, 0.0, 0.0);
  const auto missing = optim::multi_transform({{"adam", optim::adam(0.1f)}}, [](std::string_view) { return "sgd"; });
  check_throws_with<ValueError>([&] { (void)missing.init(params); },
                                {"multi_transform", "\"params/Dense_0/bias\"", "\"sgd\"", "\"adam\""});
}

// ================================================================ accumulation, averages, injected hyperparameters

TEST_CASE("MultiSteps: zeros for k - 1 micro-batches, then the inner step on their mean") {
  const Variables params = small_params();
  const optim::MultiSteps multi(optim::adam(0.1f), 3);
  const auto tx = multi.gradient_transformation();
  Variables state = tx.init(params);
  CHECK(state.paths() == Strings{"acc_grads/params/Dense_0/bias", "acc_grads/params/Dense_0/kernel",
                                 "acc_grads/params/scale", "gradient_step/gradient_step",
                                 "inner_opt_state/count/count", "inner_opt_state/mu/params/Dense_0/bias",
                                 "inner_opt_state/mu/params/Dense_0/kernel", "inner_opt_state/mu/params/scale",
                                 "inner_opt_state/nu/params/Dense_0/bias", "inner_opt_state/nu/params/Dense_0/kernel",
                                 "inner_opt_state/nu/params/scale", "mini_step/mini_step"});
  const auto adam = optim::adam(0.1f);
  Variables adam_state = adam.init(params);
  for (int outer = 0; outer < 2; ++outer) {
    Doubles avg(9, 0.0);
    for (int i = 0; i < 3; ++i) {
      const Variables g = small_grads(3 * outer + i);
      const Doubles gv = flat(g);
      for (std::size_t j = 0; j < 9; ++j) avg[j] += gv[j] / 3;
      auto [u, next] = tx.update(g, state, params);
      state = next;
      INFO("outer " << outer << ", micro-batch " << i);
      CHECK(count_of(state, "mini_step/mini_step") == (i + 1) % 3);
      CHECK(multi.has_updated(state) == (i == 2));
      if (i < 2) {
        check_values(u, Doubles(9, 0.0), 0.0, 0.0);
        CHECK(count_of(state, "gradient_step/gradient_step") == outer);
      } else {
        // The accumulated mean (the Welford update, within float rounding of the plain mean).
        std::vector<std::pair<std::string, Tensor>> leaves;
        std::size_t j = 0;
        for (const auto& [path, t] : small_grads(0).leaves()) {
          std::vector<float> v;
          for (std::int64_t e = 0; e < t.size(); ++e) v.push_back(static_cast<float>(avg[j++]));
          leaves.emplace_back(path, Tensor(std::move(v), t.shape()));
        }
        auto [ua, na] = adam.update(Variables::from_leaves(std::move(leaves)), adam_state, params);
        check_values(u, flat(ua), 1e-4, 1e-6);
        adam_state = na;
        CHECK(count_of(state, "gradient_step/gradient_step") == outer + 1);
        CHECK(count_of(state, "inner_opt_state/count/count") == outer + 1);
        check_values(state.unprefixed("acc_grads"), Doubles(9, 0.0), 0.0, 0.0);
      }
    }
  }
  // Summed instead of averaged, with k from a schedule of the inner steps (1, then 2, ...).
  const optim::MultiSteps sum(optim::sgd(1.0f), [](std::int64_t step) { return step + 1; }, false);
  Variables s = sum.init(params);
  auto [u1, s1] = sum.update(small_grads(1), s, params);  // k = 1: an inner step at once
  check_values(u1, [] { Doubles d = flat(small_grads(1)); for (double& x : d) x = -x; return d; }(), 0.0, 0.0);
  auto [u2, s2] = sum.update(small_grads(1), s1, params);  // k = 2: accumulate
  check_values(u2, Doubles(9, 0.0), 0.0, 0.0);
  auto [u3, s3] = sum.update(small_grads(2), s2, params);
  Doubles both = flat(small_grads(1));
  const Doubles g2 = flat(small_grads(2));
  for (std::size_t j = 0; j < 9; ++j) both[j] = -static_cast<double>(static_cast<float>(both[j]) + static_cast<float>(g2[j]));
  check_values(u3, both, 1e-7, 0.0);
  CHECK(sum.has_updated(s3));
  check_throws_with<ValueError>([] { (void)optim::MultiSteps(optim::sgd(1.0f), 0); }, {"MultiSteps", "every_k", "1 or more"});
}

TEST_CASE("ema: the debiased moving average of the updates, and of the params") {
  const Variables a = Variables::from_leaves({{"params/w", Tensor({1.0f, -2.0f}, Shape{2})}});
  const Variables b = Variables::from_leaves({{"params/w", Tensor({3.0f, 0.0f}, Shape{2})}});
  const auto tx = optim::ema(0.9f);
  Variables s = tx.init(a);
  CHECK(s.paths() == Strings{"count/count", "ema/params/w"});
  auto [u1, s1] = tx.update(a, s, {});
  check_values(u1, {1.0, -2.0}, 1e-6);  // (0.1 a) / (1 - 0.9)
  check_values(s1.unprefixed("ema"), {0.1, -0.2}, 1e-6);
  auto [u2, s2] = tx.update(b, s1, {});
  // ema = 0.1 b + 0.9 * 0.1 a = (0.39, -0.18); debiased by 1 - 0.81.
  check_values(s2.unprefixed("ema"), {0.39, -0.18}, 1e-6);
  check_values(u2, {0.39 / 0.19, -0.18 / 0.19}, 1e-6);
  CHECK(count_of(s2) == 2);
  auto [raw, _] = optim::ema(0.9f, false).update(b, s1, {});
  check_values(raw, {0.39, -0.18}, 1e-6);
  // The average of the params along a training run: a constant param averages to itself.
  const auto average = optim::ema(0.99f);
  Variables es = average.init(a);
  Variables averaged;
  for (int i = 0; i < 50; ++i) std::tie(averaged, es) = average.update(a, es, {});
  check_values(averaged, {1.0, -2.0}, 1e-5);
}

TEST_CASE("inject_hyperparams: a learning rate that the caller reads and changes between steps") {
  const Variables params = small_params();
  const auto tx = optim::inject_hyperparams(
      [](const optim::Hyperparams& h) { return optim::adam(h.at("learning_rate"), h.at("b1")); },
      {{"learning_rate", 0.1f}, {"b1", 0.9f}});
  Variables state = tx.init(params);
  CHECK(state.contains("count/count"));
  CHECK(state.contains("hyperparams/learning_rate"));
  CHECK(state.contains("inner_state/mu/params/scale"));
  CHECK(optim::hyperparam(state, "learning_rate") == 0.1f);
  const auto adam = optim::adam(0.1f);
  auto [u1, s1] = tx.update(small_grads(1), state, params);
  auto [ua, sa] = adam.update(small_grads(1), adam.init(params), params);
  check_values(u1, flat(ua), 0.0, 0.0);
  check_values(s1.unprefixed("inner_state"), flat(sa), 0.0, 0.0);
  // A smaller learning rate from now on: the same Adam state, a tenth of the step.
  const Variables slower = optim::set_hyperparam(s1, "learning_rate", 0.01f);
  CHECK(optim::hyperparam(slower, "learning_rate") == 0.01f);
  auto [u2, s2] = tx.update(small_grads(2), slower, params);
  auto [ua2, sa2] = optim::adam(0.01f).update(small_grads(2), sa, params);
  check_values(u2, flat(ua2), 0.0, 0.0);
  CHECK(optim::hyperparam(s2, "learning_rate") == 0.01f);
  CHECK(count_of(s2) == 2);
  // A scheduled hyperparameter is the schedule's value at the count; the state shows it.
  const auto sched = optim::inject_hyperparams([](const optim::Hyperparams& h) { return optim::sgd(h.at("learning_rate")); },
                                               {{"learning_rate", optim::linear_schedule(1.0f, 0.0f, 4)}});
  Variables ss = sched.init(params);
  CHECK(optim::hyperparam(ss, "learning_rate") == 1.0f);
  for (int k = 0; k < 3; ++k) ss = sched.update(small_grads(k), ss, params).second;
  CHECK(optim::hyperparam(ss, "learning_rate") == doctest::Approx(0.5));  // the value of the third update
  check_throws_with<KeyError>([&] { (void)optim::set_hyperparam(state, "momentum", 0.5f); },
                              {"set_hyperparam", "\"hyperparams/momentum\""});
  check_throws_with<ValueError>([&] { (void)optim::set_hyperparam(state, "learning_rate", std::nanf("")); },
                                {"learning_rate", "finite"});
}

// ================================================================ a small model learns with each of them

TEST_CASE("end to end: every new optimizer and wrapper decreases a linear regression's loss") {
  const std::int64_t n = 64;
  const Tensor x = pattern(Shape{n, 3}, -1.0f, 1.0f, 11);
  const Tensor y = matmul(x, Tensor({1.5f, -2.0f, 0.5f}, Shape{3, 1})) + 0.75f;
  const Variables start = Variables::from_leaves({{"params/Dense_0/kernel", zeros(Shape{3, 1})},
                                                  {"params/Dense_0/bias", zeros(Shape{1})}});
  const auto loss_fn = [](const Variables& v, const Tensor& xs, const Tensor& ys) {
    return mean(losses::squared_error(matmul(xs, v.at("params/Dense_0/kernel")) + v.at("params/Dense_0/bias"), ys));
  };
  const optim::Mask kernels = [](std::string_view path) { return path.ends_with("/kernel"); };
  optim::AdafactorOptions af;
  af.learning_rate = 0.05f;
  af.min_dim_size_to_factor = 1;
  af.multiply_by_parameter_scale = false;
  const std::vector<std::pair<std::string, optim::GradientTransformation>> optimizers{
      {"rmsprop", optim::rmsprop(0.03f)},
      {"rmsprop centred with momentum", optim::rmsprop(0.005f, 0.9f, 1e-8f, 0.0f, true, true, 0.9f)},
      {"adagrad", optim::adagrad(0.3f)},
      {"lion", optim::lion(0.02f)},
      {"lamb", optim::lamb(0.05f)},
      {"adafactor", optim::adafactor(af)},
      {"adamw masked", optim::adamw(0.05f, 0.9f, 0.999f, 1e-8f, 1e-2f, kernels)},
      {"multi_transform", optim::multi_transform({{"k", optim::adam(0.05f)}, {"b", optim::sgd(0.1f)}},
                                                 [](std::string_view p) { return p.ends_with("/kernel") ? "k" : "b"; })},
      {"MultiSteps of 2", optim::MultiSteps(optim::adam(0.05f), 2).gradient_transformation()},
      {"inject_hyperparams", optim::inject_hyperparams([](const optim::Hyperparams& h) { return optim::adam(h.at("lr")); },
                                                       {{"lr", optim::exponential_decay(0.05f, 100, 0.5f)}})},
      {"chain(clip, add_decayed_weights, scale_by_schedule)",
       optim::chain(optim::clip(1.0f), optim::add_decayed_weights(1e-3f, kernels),
                    optim::scale_by_schedule(optim::piecewise_constant_schedule(-0.1f, {{100, 0.5f}})))},
  };
  for (const auto& entry : optimizers) {
    const std::string& name = entry.first;  // not a structured binding: clang 14's INFO cannot capture one
    const optim::GradientTransformation& tx = entry.second;
    INFO(name);
    Variables variables = start, state = tx.init(start);
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 200; ++step) {
      auto [loss, grads] = value_and_grad(loss_fn)(variables, x, y);
      if (step == 0) first = loss.item();
      last = loss.item();
      auto [updates, next] = tx.update(grads, state, variables);
      variables = optim::apply_updates(variables, updates);
      state = next;
    }
    CHECK(first > 1.0f);
    CHECK(last < 0.1f * first);
  }
}

TEST_CASE("the new optimizers are bit-identical on 1 and 2 threads, over several parallel chunks") {
  // 100003 elements: several chunks and a ragged last one; (400, 300) factored by adafactor.
  const Variables params = Variables::from_leaves({{"params/w", pattern(Shape{100003}, -1.0f, 1.0f, 2)},
                                                   {"params/m", pattern(Shape{400, 300}, -1.0f, 1.0f, 3)}});
  const Variables grads = tree_map([](const Tensor& p) { return p * 0.5f + 0.01f; }, params);
  const std::vector<optim::GradientTransformation> optimizers{
      optim::rmsprop(0.01f, 0.9f, 1e-8f, 0.0f, true, true, 0.9f), optim::adagrad(0.1f), optim::lion(0.01f),
      optim::lamb(0.01f, 0.9f, 0.999f, 1e-6f, 0.0f, 0.01f), optim::adafactor({.learning_rate = 0.1f, .momentum = 0.9f}),
      optim::chain(optim::clip_by_block_rms(0.1f), optim::clip(0.02f), optim::ema(0.9f)),
      optim::MultiSteps(optim::adamw(0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, optim::Mask([](std::string_view p) {
                                       return p == "params/m";
                                     })),
                        1)
          .gradient_transformation()};
  const int saved = omp_get_max_threads();
  for (std::size_t i = 0; i < optimizers.size(); ++i) {
    INFO("optimizer " << i);
    const auto run = [&] {
      Variables state = optimizers[i].init(params);
      auto [u1, s1] = optimizers[i].update(grads, state, params);
      auto [u2, s2] = optimizers[i].update(grads, s1, optim::apply_updates(params, u1));
      return std::pair{flat(u2), flat(s2)};
    };
    omp_set_num_threads(1);
    const auto one = run();
    omp_set_num_threads(2);
    const auto two = run();
    omp_set_num_threads(saved);
    CHECK(one.first == two.first);
    CHECK(one.second == two.second);
  }
}

TEST_CASE("the new optimizers' hyperparameters out of range are clear errors") {
  check_throws_with<ValueError>([] { (void)optim::rmsprop(0.1f, 1.0f); }, {"rmsprop", "decay", "[0, 1)"});
  check_throws_with<ValueError>([] { (void)optim::rmsprop(0.1f, 0.9f, -1.0f); }, {"rmsprop", "eps"});
  check_throws_with<ValueError>([] { (void)optim::adagrad(0.1f, -0.1f); }, {"adagrad", "initial_accumulator_value"});
  check_throws_with<ValueError>([] { (void)optim::lion(0.1f, 1.5f); }, {"lion", "b1"});
  check_throws_with<ValueError>([] { (void)optim::lamb(0.1f, 0.9f, 0.999f, 1e-6f, 0.0f, -1.0f); }, {"lamb", "weight_decay"});
  check_throws_with<ValueError>([] { (void)optim::clip(-1.0f); }, {"clip", "max_delta"});
  check_throws_with<ValueError>([] { (void)optim::clip_by_block_rms(0.0f); }, {"clip_by_block_rms", "threshold"});
  check_throws_with<ValueError>([] { (void)optim::ema(1.5f); }, {"ema", "decay"});
  check_throws_with<ValueError>([] { (void)optim::adafactor({.momentum = 2.0f}); }, {"adafactor", "momentum"});
  check_throws_with<ValueError>([] { (void)optim::inject_hyperparams([](const optim::Hyperparams&) { return optim::sgd(1.0f); },
                                                                     {{"a/b", 1.0f}}); },
                                {"inject_hyperparams", "\"a/b\""});
  const Variables params = small_params();
  const auto l = optim::lion(0.1f);
  check_throws_with<ValueError>([&] { (void)l.update(small_grads(1), l.init(params), {}); }, {"lion", "params"});
  check_throws_with<KeyError>([&] { (void)l.update(small_grads(1), optim::adagrad(0.1f).init(params), params); },
                              {"lion", "\"mu\""});
}
