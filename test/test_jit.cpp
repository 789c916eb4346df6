// weft::jit: a traced function replays bit for bit what eager mode computes (forward passes,
// gradients, optimizer steps, random draws), traces once per signature, and reports the mistakes
// a trace cannot hide (a host read of a traced value) as errors that name the op.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../src/buffer.hpp"
#include "testing.hpp"
#include "weft/jit.hpp"
#include "weft/losses.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/optim.hpp"
#include "weft/random.hpp"

using namespace weft;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace jit_test {

/// Same shape, dtype and bits.
void check_same(const Tensor& actual, const Tensor& expected) {
  REQUIRE(actual.defined());
  REQUIRE(actual.shape() == expected.shape());
  REQUIRE(actual.dtype() == expected.dtype());
  if (expected.dtype() == DType::int32) {
    CHECK(actual.to_int_vector() == expected.to_int_vector());
    return;
  }
  const auto a = actual.to_vector(), e = expected.to_vector();
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::bit_cast<std::uint32_t>(a[i]) != std::bit_cast<std::uint32_t>(e[i])) ++differ;
  INFO(differ << " of " << a.size() << " elements differ");
  CHECK(differ == 0);
}

void check_same(const Variables& actual, const Variables& expected) {
  REQUIRE(actual.paths() == expected.paths());
  for (const auto& [path, t] : expected.leaves()) {
    INFO("at " << path);
    check_same(actual.at(path), t);
  }
}

Tensor chain(const Tensor& x, const Tensor& y) {
  return sum(tanh(x * y + 1.0f) - exp(-square(x)) / (1.0f + abs(y)), 1) + mean(relu(x), Axes(1));
}

struct Mlp {
  std::int64_t hidden = 16;
  float drop_rate = 0.0f;
  Tensor operator()(nn::Scope& s, Tensor x, bool train) const {
    x = relu(s(nn::Dense{.features = hidden}, x));
    if (drop_rate > 0.0f) x = s(nn::Dropout{.rate = drop_rate, .deterministic = !train}, x);
    x = s(nn::BatchNorm{.use_running_average = !train}, x);
    return s(nn::Dense{.features = 3}, x);
  }
};

/// One training step as a pure function: loss, gradient through BatchNorm and Dropout, Adam.
struct TrainStep {
  Mlp model;
  optim::GradientTransformation tx;
  std::tuple<Variables, Variables, Tensor> operator()(const Variables& variables, const Variables& opt_state,
                                                      const Tensor& x, const Tensor& labels, Key key) const {
    const auto loss_fn = [&](const Variables& vars) {
      auto [logits, state] =
          nn::apply(model, vars, nn::Mutable{"batch_stats"}, Rngs{{"dropout", key}}, x, true);
      return std::pair{mean(losses::softmax_cross_entropy_with_integer_labels(logits, labels)), state};
    };
    auto [loss, state, grads] = value_and_grad_with_aux(loss_fn)(variables);
    const Variables params = variables.collection("params");
    auto [updates, next_opt] = tx.update(grads, opt_state, params);
    return {optim::apply_updates(params, updates).merge(state), next_opt, loss};
  }
};

}  // namespace jit_test

using namespace jit_test;

TEST_CASE("jit: an elementwise and reduction chain replays eager mode's bits and traces once per shape") {
  const auto f = jit(chain);
  const Tensor x = pattern(Shape{4, 5}), y = pattern(Shape{4, 5}, -2.0f, 2.0f, 1);
  check_same(f(x, y), chain(x, y));
  check_same(f(y, x), chain(y, x));  // new values, the same plan
  CHECK(f.trace_count() == 1);
  const Tensor x2 = pattern(Shape{2, 5}, -1.0f, 1.0f, 3);
  check_same(f(x2, x2), chain(x2, x2));  // a new batch size traces again; one tensor in both places
  CHECK(f.trace_count() == 2);
  check_same(f(x2, pattern(Shape{2, 5}, 0.0f, 1.0f, 4)), chain(x2, pattern(Shape{2, 5}, 0.0f, 1.0f, 4)));
  CHECK(f.trace_count() == 2);
  CHECK(f.cache_size() == 2);
}

TEST_CASE("jit: a chain of elementwise ops runs as one fused pass with eager mode's bits") {
  // A bias row and a scalar broadcast, an intermediate also returned (so written to memory), and
  // sizes that are not a multiple of the fused block, nor the row of it.
  const auto chain_fn = [](const Tensor& x, const Tensor& y, const Tensor& b) {
    const Tensor xy = x * y;
    return std::pair{relu(xy + b) * 2.0f - tanh(xy), xy};
  };
  const auto f = jit(chain_fn);
  for (const Shape& shape : {Shape{300, 70}, Shape{3, 7}}) {
    const Tensor x = pattern(shape), y = pattern(shape, -2.0f, 2.0f, 1),
                 b = pattern(Shape{shape[1]}, -1.0f, 1.0f, 2);
    const auto [out, xy] = f(x, y, b);
    const auto [out_e, xy_e] = chain_fn(x, y, b);
    check_same(out, out_e);
    check_same(xy, xy_e);
    const detail::JitPlanStats stats = detail::jit_stats(*f.latest_plan());
    CHECK(stats.fused_ops == 6);  // multiply, add, relu, multiply, tanh, subtract
    CHECK(stats.steps == 1);
  }
  // The gradient's elementwise ops fuse too.
  const auto loss = [](const Tensor& w, const Tensor& x) { return sum(tanh(x * w + 1.0f) * sigmoid(w)); };
  const auto g = jit(grad(loss));
  const Tensor w = pattern(Shape{64, 33}, -1.0f, 1.0f, 3), x = pattern(Shape{64, 33}, -1.0f, 1.0f, 4);
  check_same(g(w, x), grad(loss)(w, x));
  CHECK(detail::jit_stats(*g.latest_plan()).fused_ops >= 4);
  // A donated input dies in the chain: the result is written over it.
  const auto h = jit([](const Tensor& x) { return relu(x * 2.0f + 1.0f); });
  Tensor d = pattern(Shape{1000});
  const Tensor expected = relu(d * 2.0f + 1.0f);
  const float* before = d.values<float>().data();
  const Tensor r = h(std::move(d));
  check_same(r, expected);
  CHECK(r.values<float>().data() == before);
}

TEST_CASE("jit: an op repeated on the same inputs runs once (common subexpressions)") {
  const auto fn = [](const Tensor& x, const Tensor& w) {
    return matmul(tanh(x), w) + matmul(tanh(x), w) * exp(x) - exp(x) + matmul(tanh(x), w, {.transpose_b = true});
  };
  const auto f = jit(fn);
  const Tensor x = pattern(Shape{6, 4}), w = pattern(Shape{4, 4}, -1.0f, 1.0f, 1);
  check_same(f(x, w), fn(x, w));
  const detail::JitPlanStats stats = detail::jit_stats(*f.latest_plan());
  CHECK(stats.merged_ops == 4);  // tanh twice, the first product once, exp once
  CHECK(stats.gemms == 2);       // the transposed product is another
}

TEST_CASE("jit: an elementwise kernel writes over a dying value of the arena") {
  // matmul's output dies in exp, which may run in place: both live in the same arena bytes.
  const auto fn = [](const Tensor& x, const Tensor& w, const Tensor& w2) { return matmul(exp(matmul(x, w)), w2); };
  const auto f = jit(fn);
  const Tensor x = pattern(Shape{8, 16}), w = pattern(Shape{16, 32}, -0.5f, 0.5f, 1),
               w2 = pattern(Shape{32, 4}, -1.0f, 1.0f, 2);
  check_same(f(x, w, w2), fn(x, w, w2));
  const Tensor x2 = pattern(Shape{8, 16}, -2.0f, 2.0f, 3);
  check_same(f(x2, w, w2), fn(x2, w, w2));
  CHECK(detail::jit_stats(*f.latest_plan()).arena_bytes == 8 * 32 * sizeof(float));
}

TEST_CASE("jit: the gradients of softmax, extrema, where, divide, var, slice and take are recorded as ops") {
  const auto loss = [](const Tensor& x, const Tensor& y, const Tensor& ids) {
    const Tensor a = softmax(x, 1) * log_softmax(y, 0) + maximum(x, y) / (1.0f + abs(y));
    const Tensor b = where(x > y, x, y * 2.0f) - minimum(x, 0.5f * y);
    return sum(a * b) + sum(max(x, 1)) + sum(slice(y, {1, 0}, {3, 4})) + sum(take(x, ids) * y) +
           sum(var(x * y, 0) * logsumexp(y, 1));
  };
  const auto g = jit(grad(loss));
  const Tensor x = pattern(Shape{4, 4}), y = pattern(Shape{4, 4}, -2.0f, 2.0f, 1);
  const Tensor ids(std::vector<std::int32_t>{3, 0, 3, 1}, Shape{4});
  check_same(g(x, y, ids), grad(loss)(x, y, ids));
  const Tensor x2 = pattern(Shape{4, 4}, -1.0f, 1.0f, 2);
  check_same(g(x2, y, ids), grad(loss)(x2, y, ids));
  CHECK(detail::jit_stats(*g.latest_plan()).vjp_steps == 0);
}

TEST_CASE("jit: the least recently used plan is dropped beyond cache_size, and traced again when needed") {
  int calls = 0;  // a side effect: it happens at trace time only
  const auto f = jit(
      [&calls](const Tensor& x) {
        ++calls;
        return x * 2.0f;
      },
      {.cache_size = 2});
  for (int n : {1, 2, 1, 3, 2, 2}) check_same(f(pattern(Shape{n})), pattern(Shape{n}) * 2.0f);
  // 1, 2 traced; 1 hit; 3 traced (drops 2); 2 traced again (drops 1); 2 hit.
  CHECK(f.trace_count() == 4);
  CHECK(calls == 4);
  CHECK(f.cache_size() == 2);
}

TEST_CASE("jit: non-tensor arguments are static, captured tensors are constants") {
  const Tensor w = pattern(Shape{3}, 0.5f, 1.5f);
  const auto f = jit([w](const Tensor& x, bool negate, float scale) { return negate ? -(x * w) * scale : x * w; });
  const Tensor x = pattern(Shape{3});
  check_same(f(x, false, 1.0f), x * w);
  check_same(f(x, true, 2.0f), -(x * w) * 2.0f);
  check_same(f(x, true, 3.0f), -(x * w) * 3.0f);
  check_same(f(x * 2.0f, true, 3.0f), -((x * 2.0f) * w) * 3.0f);
  CHECK(f.trace_count() == 3);
}

TEST_CASE("jit: a model's forward pass replays without running the module code again") {
  const Mlp model{.hidden = 8};
  const Tensor x = pattern(Shape{4, 6});
  const Variables vars = nn::init(model, Key(0), x, false);
  int traced = 0;
  const auto forward = jit([&](const Variables& v, const Tensor& input) {
    ++traced;
    return nn::apply(model, v, input, false);
  });
  check_same(forward(vars, x), nn::apply(model, vars, x, false));
  const Tensor x2 = pattern(Shape{4, 6}, -3.0f, 3.0f, 7);
  check_same(forward(vars, x2), nn::apply(model, vars, x2, false));
  CHECK(traced == 1);
}

TEST_CASE("jit: a training step (gradient through BatchNorm and Dropout, Adam) replays eager mode's bits") {
  const TrainStep step{.model = {.hidden = 16, .drop_rate = 0.25f}, .tx = optim::adam(1e-2f)};
  const Tensor x = pattern(Shape{8, 6});
  const Tensor labels(std::vector<std::int32_t>{0, 1, 2, 0, 1, 2, 2, 1}, Shape{8});
  const Variables vars = nn::init(step.model, Key(0), x, false);
  const Variables opt = step.tx.init(vars.collection("params"));
  const auto jitted = jit(step);

  Variables ev = vars, eo = opt, jv = vars, jo = opt;
  for (std::uint32_t i = 0; i < 4; ++i) {
    const Key key = fold_in(Key(5), i);  // a new dropout mask every step, in both modes
    auto [v1, o1, l1] = step(ev, eo, x, labels, key);
    auto [v2, o2, l2] = jitted(jv, jo, x, labels, key);
    check_same(l2, l1);
    check_same(v2, v1);
    check_same(o2, o1);
    ev = v1, eo = o1, jv = v2, jo = o2;
  }
  CHECK(jitted.trace_count() == 1);
  // A new batch size traces again and still matches.
  const Tensor x6 = pattern(Shape{6, 6}, -1.0f, 1.0f, 2);
  const Tensor labels6(std::vector<std::int32_t>{2, 1, 0, 0, 1, 2}, Shape{6});
  auto [v1, o1, l1] = step(ev, eo, x6, labels6, Key(9));
  auto [v2, o2, l2] = jitted(jv, jo, x6, labels6, Key(9));
  check_same(l2, l1);
  check_same(v2, v1);
  check_same(o2, o1);
  CHECK(jitted.trace_count() == 2);
}

TEST_CASE("jit: a replayed training step holds no more tensor bytes at its peak than eager mode's step") {
  const TrainStep step{.model = {.hidden = 256, .drop_rate = 0.25f}, .tx = optim::adam(1e-3f)};
  const Tensor x = pattern(Shape{64, 128});
  std::vector<std::int32_t> label_values(64);
  for (std::size_t i = 0; i < label_values.size(); ++i) label_values[i] = static_cast<std::int32_t>(i % 3);
  const Tensor labels(label_values, Shape{64});
  const Variables vars = nn::init(step.model, Key(0), x, false);
  const Variables opt = step.tx.init(vars.collection("params"));
  const auto jitted = jit(step);
  (void)jitted(vars, opt, x, labels, Key(1));  // the trace
  // The bytes of elements alive at the step's peak, beyond those alive before it (the inputs).
  const auto peak_of = [&](const auto& f) {
    const std::size_t before = weft::detail::tensor_bytes().live;
    weft::detail::reset_tensor_bytes_peak();
    const auto result = f(vars, opt, x, labels, Key(2));
    (void)result;
    return weft::detail::tensor_bytes().peak - before;
  };
  const std::size_t eager = peak_of(step), replay = peak_of(jitted);
  INFO("eager " << eager << " bytes, jit " << replay << " bytes");
  // A step makes new params and both moments, three times the params' bytes: a smaller peak would
  // mean the counters missed the step.
  CHECK(eager > 3 * vars.collection("params").num_elements() * sizeof(float));
  CHECK(replay <= eager);
}

TEST_CASE("jit: keys are inputs, so draws follow each call's key; a key made inside is a constant") {
  const auto f = jit([](const Tensor& x, Key key) {
    const auto keys = split(key);
    return x + uniform(keys[0], x.shape()) + normal(fold_in(keys[1], 3), x.shape()) + normal(Key(0), x.shape());
  });
  const auto eager = [](const Tensor& x, Key key) {
    const auto keys = split(key);
    return x + uniform(keys[0], x.shape()) + normal(fold_in(keys[1], 3), x.shape()) + normal(Key(0), x.shape());
  };
  const Tensor x = zeros(Shape{16});
  // Key(0) is both the caller's key and the constant inside: the trace tells them apart.
  check_same(f(x, Key(0)), eager(x, Key(0)));
  check_same(f(x, Key(1)), eager(x, Key(1)));
  check_same(f(x, Key(1, ThreefryLayout::classic)), eager(x, Key(1, ThreefryLayout::classic)));
  CHECK(f.trace_count() == 2);  // the layout is part of the signature
}

TEST_CASE("jit: reading a traced value on the host is an error at trace time that names the op") {
  const auto f = jit([](const Tensor& x) {
    const float total = sum(x).item();  // a value-dependent host computation
    return x * total;
  });
  check_throws_with<Error>([&] { (void)f(pattern(Shape{3})); }, {"weft::jit", "Tensor::item()", "'sum'"});
  const auto g = jit([](const Tensor& x) { return zeros(Shape{static_cast<std::int64_t>(max(x).item())}); });
  check_throws_with<Error>([&] { (void)g(pattern(Shape{3})); }, {"weft::jit", "'max'", "shape"});
  const auto h = jit([](const Tensor& x) { return x.to_vector()[0] > 0.0f ? x : -x; });
  check_throws_with<Error>([&] { (void)h(pattern(Shape{3})); }, {"Tensor::to_vector()", "an input of the function"});
  // A failed trace leaves nothing behind.
  CHECK(f.trace_count() == 0);
  // Values of constants may be read: they do not change between calls.
  const Tensor c = pattern(Shape{3});
  const auto k = jit([c](const Tensor& x) { return x * c.to_vector()[1]; });
  check_same(k(pattern(Shape{3})), pattern(Shape{3}) * c.to_vector()[1]);
}

TEST_CASE("jit: a jitted function inside another one inlines; under weft::grad it runs eagerly") {
  const auto inner = jit([](const Tensor& x) { return tanh(x) * x; });
  const auto outer = jit([&inner](const Tensor& x) { return sum(inner(x) + 1.0f); });
  const Tensor x = pattern(Shape{5});
  check_same(outer(x), sum(tanh(x) * x + 1.0f));
  CHECK(outer.trace_count() == 1);
  CHECK(inner.trace_count() == 0);  // traced as part of outer
  const Tensor g = grad([&inner](const Tensor& v) { return sum(inner(v)); })(x);
  check_same(g, grad([](const Tensor& v) { return sum(tanh(v) * v); })(x));
  CHECK(inner.trace_count() == 0);
}

TEST_CASE("jit: the gradient of a function of several ops, and value_and_grad's pair as a result") {
  const auto f = [](const Tensor& w, const Tensor& x) {
    return mean(square(matmul(x, w) - 0.5f)) + 0.1f * sum(abs(w));
  };
  const auto vg = jit([&f](const Tensor& w, const Tensor& x) { return value_and_grad(f)(w, x); });
  const Tensor w = pattern(Shape{4, 3}), x = pattern(Shape{5, 4}, -1.0f, 1.0f, 2);
  const auto expected = value_and_grad(f)(w, x);
  for (int i = 0; i < 2; ++i) {
    const auto got = vg(w, x);
    check_same(got.value, expected.value);
    check_same(got.grad, expected.grad);
  }
}

TEST_CASE("jit: arguments passed as rvalues are donated: the optimizer step updates them in place") {
  const auto tx = optim::adamw(1e-2f, 0.9f, 0.999f, 1e-8f, 1e-3f);
  const auto step_fn = [tx](const Variables& p, const Variables& s, const Tensor& x) {
    const auto [loss, g] =
        value_and_grad([&](const Variables& q) { return sum(square(relu(matmul(x, q.at("params/w"))))); })(p);
    auto [u, s2] = tx.update(g, s, p);
    return std::pair{optim::apply_updates(p, u), s2};
  };
  const auto step = jit(step_fn);
  const Tensor x = pattern(Shape{8, 128});
  const Variables p0 = Variables::from_leaves({{"params/w", pattern(Shape{128, 256}, -0.1f, 0.1f, 1)}});
  Variables pe = p0, se = tx.init(p0);
  Variables p = Variables::from_leaves({{"params/w", pattern(Shape{128, 256}, -0.1f, 0.1f, 1)}}), s = tx.init(p);
  for (int i = 0; i < 3; ++i) {
    std::tie(pe, se) = step_fn(pe, se, x);
    const float* w = p.at("params/w").values<float>().data();
    const float* mu = s.at("mu/params/w").values<float>().data();
    auto [p2, s2] = step(std::move(p), std::move(s), x);
    CHECK(p.empty());  // handed over
    check_same(p2, pe);
    check_same(s2, se);
    // Nothing else held them, so the new params and moments are in the old buffers (but for the
    // first step: init's mu and nu are one tensor, which neither update may overwrite).
    CHECK(p2.at("params/w").values<float>().data() == w);
    CHECK((s2.at("mu/params/w").values<float>().data() == mu) == (i > 0));
    p = std::move(p2);
    s = std::move(s2);
  }
  // An lvalue is never written, and a donated tree that is also held elsewhere is not either.
  const Variables kept = p;
  const std::vector<float> before = kept.at("params/w").to_vector();
  auto [p3, s3] = step(p, s, x);
  auto [p4, s4] = step(std::move(p), s, x);
  CHECK(kept.at("params/w").to_vector() == before);
  check_same(p4, p3);
  CHECK(step.trace_count() == 1);
}
