#include "testing.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_gradient;
using weft::testing::check_same_on_1_and_2_threads;
using weft::testing::check_throws_with;
using weft::testing::pattern;

namespace {

auto readout(const Tensor& t) { return sum(t * pattern(t.shape(), -1.0f, 1.0f, 5)); }

Tensor ints(std::vector<std::int32_t> v, Shape s) { return Tensor(std::move(v), s); }

}  // namespace

// ---------------------------------------------------------------- concat

TEST_CASE("concat joins along any axis") {
  const Tensor a({1.f, 2.f, 3.f, 4.f}, Shape{2, 2});
  const Tensor b({5.f, 6.f}, Shape{2, 1});
  const Tensor c({7.f, 8.f}, Shape{1, 2});
  check_close(concat({a, b}, 1), {1, 2, 5, 3, 4, 6}, Shape{2, 3});
  check_close(concat({a, b}, -1), {1, 2, 5, 3, 4, 6}, Shape{2, 3});
  check_close(concat({a, c}), {1, 2, 3, 4, 7, 8}, Shape{3, 2});
  check_close(concat({c, a, c}, 0), {7, 8, 1, 2, 3, 4, 7, 8}, Shape{4, 2});
  check_close(concat({a, zeros(Shape{2, 0}), b}, 1), {1, 2, 5, 3, 4, 6}, Shape{2, 3});
  check_close(concat({a}), a);
  // A middle axis of rank-3 tensors.
  const Tensor p = reshape(arange(12), {2, 3, 2});
  const Tensor q = reshape(arange(100, 104), {2, 1, 2});
  check_close(concat({p, q}, 1), {0, 1, 2, 3, 4, 5, 100, 101, 6, 7, 8, 9, 10, 11, 102, 103}, Shape{2, 4, 2});
  // int32 tensors stay int32.
  const Tensor ij = concat({ints({1, 2}, Shape{2}), ints({3}, Shape{1})});
  CHECK(ij.dtype() == DType::int32);
  CHECK(ij.to_int_vector() == std::vector<std::int32_t>{1, 2, 3});
  // A large join (parallel copy) against slices of the result.
  const Tensor big1 = pattern(Shape{300, 70}), big2 = pattern(Shape{300, 50}, -1.0f, 1.0f, 2);
  const Tensor big = concat({big1, big2}, 1);
  check_close(slice_axis(big, 1, 0, 70), big1, 0.0f, 0.0f);
  check_close(slice_axis(big, 1, 70, 120), big2, 0.0f, 0.0f);
}

TEST_CASE("concat gradient: slices of the output gradient back to each input") {
  const Tensor a = pattern(Shape{2, 2}), b = pattern(Shape{2, 1}, -1.0f, 1.0f, 1);
  const Tensor w({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, Shape{2, 3});
  const auto g = grad([&](const std::vector<Tensor>& xs) { return sum(concat(xs, 1) * w); })(std::vector<Tensor>{a, b});
  REQUIRE(g.size() == 2);
  check_close(g[0], {1, 2, 4, 5}, Shape{2, 2});
  check_close(g[1], {3, 6}, Shape{2, 1});
  // Only one input tracked; the other is a constant.
  check_close(grad([&](const Tensor& t) { return sum(concat({b, t}, 1) * w); })(a), {2, 3, 5, 6}, Shape{2, 2});
  const Tensor p = pattern(Shape{2, 3, 2}), q = pattern(Shape{2, 1, 2}, -1.0f, 1.0f, 3);
  check_gradient([&](const Tensor& t) { return readout(concat({t, q}, 1)); }, p);
  check_gradient([&](const Tensor& t) { return readout(concat({p, t, p}, 1)); }, q);
  check_gradient([&](const Tensor& t) { return readout(concat({t, t}, 0)); }, p);
  check_gradient([&](const Tensor& t) { return readout(concat({p, t}, -1)); }, pattern(Shape{2, 3, 3}, -1.0f, 1.0f, 4));
}

TEST_CASE("concat errors name the input, the shapes and the axis") {
  check_throws_with<ValueError>([] { (void)concat({}); }, {"weft::concat", "empty list"});
  const Tensor a = ones(Shape{2, 2});
  check_throws_with<ShapeError>([&] { (void)concat({a, ones(Shape{2})}); }, {"weft::concat", "input 1", "(2,)", "(2, 2)", "rank"});
  check_throws_with<ShapeError>([&] { (void)concat({a, a, ones(Shape{3, 3})}, 1); },
                                {"weft::concat", "input 2", "(3, 3)", "(2, 2)", "axis 0", "3 vs 2"});
  check_throws_with<DTypeError>([&] { (void)concat({a, ones(Shape{2, 2}, DType::int32)}); },
                                {"weft::concat", "input 1", "int32", "float32", "astype"});
  check_throws_with<ShapeError>([&] { (void)concat({a, a}, 2); }, {"weft::concat", "axis 2", "rank 2"});
  check_throws_with<ShapeError>([] { (void)concat({Tensor(1.0f), Tensor(2.0f)}); }, {"weft::concat", "scalar"});
  check_throws_with<Error>([&] { (void)concat({a, Tensor()}); }, {"weft::concat", "empty Tensor"});
}

// ---------------------------------------------------------------- slice, slice_axis

TEST_CASE("slice follows lax.slice: start, limit, strides") {
  const Tensor x = reshape(arange(12), {3, 4});
  check_close(slice(x, {0, 1}, {3, 4}, {2, 2}), {1, 3, 9, 11}, Shape{2, 2});
  check_close(slice(x, {1, 0}, {2, 4}), {4, 5, 6, 7}, Shape{1, 4});
  check_close(slice(x, {0, 0}, {3, 4}, {1, 3}), {0, 3, 4, 7, 8, 11}, Shape{3, 2});
  check_close(slice(x, {0, 0}, {3, 4}), x);
  CHECK(slice(x, {1, 1}, {1, 4}).shape() == Shape{0, 3});
  CHECK(slice(x, {3, 4}, {3, 4}).shape() == Shape{0, 0});
  const Tensor y = reshape(arange(24), {2, 3, 4});
  check_close(slice(y, {1, 0, 1}, {2, 3, 4}, {1, 2, 2}), {13, 15, 21, 23}, Shape{1, 2, 2});
  const Tensor xi = reshape(arange(6, DType::int32), {2, 3});
  CHECK(slice(xi, {0, 1}, {2, 3}).to_int_vector() == std::vector<std::int32_t>{1, 2, 4, 5});
  check_close(slice(Tensor(3.0f), {}, {}), {3}, Shape{});
}

TEST_CASE("slice_axis: one axis, negative bounds count from the end") {
  const Tensor x = reshape(arange(12), {3, 4});
  check_close(slice_axis(x, 1, 1, 3), {1, 2, 5, 6, 9, 10}, Shape{3, 2});
  check_close(slice_axis(x, 0, -2, 3), {4, 5, 6, 7, 8, 9, 10, 11}, Shape{2, 4});
  check_close(slice_axis(x, -1, 0, -1), {0, 1, 2, 4, 5, 6, 8, 9, 10}, Shape{3, 3});
  CHECK(slice_axis(x, 0, 2, 2).shape() == Shape{0, 4});
  const Tensor y = reshape(arange(24), {2, 3, 4});
  check_close(slice_axis(y, 1, 2, 3), {8, 9, 10, 11, 20, 21, 22, 23}, Shape{2, 1, 4});
}

TEST_CASE("slice and slice_axis gradients scatter into zeros") {
  const Tensor x = reshape(arange(12), {3, 4});
  check_close(grad([](const Tensor& t) { return sum(slice(t, {0, 1}, {3, 4}, {2, 2})); })(x),
              {0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1}, Shape{3, 4});
  check_close(grad([](const Tensor& t) { return sum(slice_axis(t, 0, 1, 2) * 2.0f); })(x),
              {0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0}, Shape{3, 4});
  const Tensor y = pattern(Shape{2, 3, 4});
  check_gradient([](const Tensor& t) { return readout(slice(t, {0, 1, 0}, {2, 3, 4}, {1, 1, 3})); }, y);
  check_gradient([](const Tensor& t) { return readout(slice(t, {1, 0, 1}, {2, 3, 3})); }, y);
  check_gradient([](const Tensor& t) { return readout(slice_axis(t, 0, 1, 2)); }, y);
  check_gradient([](const Tensor& t) { return readout(slice_axis(t, 1, 0, 2)); }, y);
  check_gradient([](const Tensor& t) { return readout(slice_axis(t, -1, 1, -1)); }, y);
  // A slice used twice accumulates.
  check_close(grad([](const Tensor& t) { return sum(slice_axis(t, 0, 0, 2)) + sum(slice_axis(t, 0, 1, 3)); })(ones(Shape{3})),
              {1, 2, 1}, Shape{3});
}

TEST_CASE("slice errors: lengths, bounds and strides, with the axis and shape") {
  const Tensor x = reshape(arange(12), {3, 4});
  check_throws_with<ShapeError>([&] { (void)slice(x, {0}, {3, 4}); }, {"weft::slice", "`start`", "1 entries", "rank 2"});
  check_throws_with<ShapeError>([&] { (void)slice(x, {0, 0}, {3, 4, 1}); }, {"weft::slice", "`limit`", "rank 2"});
  check_throws_with<ShapeError>([&] { (void)slice(x, {0, 0}, {3, 4}, {1}); }, {"weft::slice", "`strides`"});
  check_throws_with<ValueError>([&] { (void)slice(x, {-1, 0}, {3, 4}); }, {"weft::slice", "start -1", "axis 0", "(3, 4)"});
  check_throws_with<ValueError>([&] { (void)slice(x, {0, 5}, {3, 5}); }, {"weft::slice", "start 5", "axis 1", "[0, 4]"});
  check_throws_with<ValueError>([&] { (void)slice(x, {0, 0}, {3, 5}); }, {"weft::slice", "limit 5", "axis 1", "[0, 4]"});
  check_throws_with<ValueError>([&] { (void)slice(x, {2, 0}, {1, 4}); }, {"weft::slice", "limit 1", "axis 0", "[2, 3]"});
  check_throws_with<ValueError>([&] { (void)slice(x, {0, 0}, {3, 4}, {1, 0}); }, {"weft::slice", "stride 0", "axis 1"});
  check_throws_with<ValueError>([&] { (void)slice_axis(x, 1, 2, 7); }, {"weft::slice_axis", "stop 7", "axis 1", "[-4, 4]"});
  check_throws_with<ValueError>([&] { (void)slice_axis(x, 0, -5, 2); }, {"weft::slice_axis", "start -5", "axis 0", "(3, 4)"});
  check_throws_with<ValueError>([&] { (void)slice_axis(x, 1, 3, -2); }, {"weft::slice_axis", "stop -2", "before start 3"});
  check_throws_with<ShapeError>([&] { (void)slice_axis(x, 2, 0, 1); }, {"weft::slice_axis", "axis 2", "rank 2"});
}

// ---------------------------------------------------------------- take

TEST_CASE("take selects rows along axis 0 by indices of any shape") {
  const Tensor x = reshape(arange(12), {4, 3});
  check_close(take(x, ints({3, 0, 1, 3}, Shape{2, 2})), {9, 10, 11, 0, 1, 2, 3, 4, 5, 9, 10, 11}, Shape{2, 2, 3});
  check_close(take(arange(5), ints({4, 0, 4}, Shape{3})), {4, 0, 4}, Shape{3});
  check_close(take(x, ints({2}, Shape{})), {6, 7, 8}, Shape{3});
  CHECK(take(x, ints({}, Shape{0})).shape() == Shape{0, 3});
  const Tensor xi = reshape(arange(6, DType::int32), {3, 2});
  const Tensor ti = take(xi, ints({2, 2, 0}, Shape{3}));
  CHECK(ti.dtype() == DType::int32);
  CHECK(ti.to_int_vector() == std::vector<std::int32_t>{4, 5, 4, 5, 0, 1});
}

TEST_CASE("take gradient: scatter-add into zeros, repeated indices accumulate") {
  const Tensor x = pattern(Shape{3, 2});
  const Tensor idx = ints({2, 0, 2, 2}, Shape{4});
  const Tensor w({1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f}, Shape{4, 2});
  check_close(grad([&](const Tensor& t) { return sum(take(t, idx) * w); })(x), {3, 4, 0, 0, 13, 16}, Shape{3, 2});
  check_gradient([](const Tensor& t) { return readout(take(t, ints({1, 1, 0, 3, 2, 1}, Shape{2, 3}))); },
                 pattern(Shape{4, 2, 3}));
  check_gradient([](const Tensor& t) { return readout(take(t, ints({4, 0, 4}, Shape{3}))); }, pattern(Shape{5}));
}

TEST_CASE("take errors: an index outside [0, n) names the value, its position and n") {
  const Tensor x = reshape(arange(12), {4, 3});
  check_throws_with<ValueError>([&] { (void)take(x, ints({0, 1, 4, 2}, Shape{2, 2})); },
                                {"weft::take", "index 4", "[1, 0]", "[0, 4)", "(4, 3)"});
  check_throws_with<ValueError>([&] { (void)take(x, ints({0, 1, -1}, Shape{3})); }, {"weft::take", "index -1", "[2]"});
  check_throws_with<ValueError>([&] { (void)take(zeros(Shape{0, 3}), ints({0}, Shape{1})); }, {"weft::take", "[0, 0)"});
  check_throws_with<DTypeError>([&] { (void)take(x, Tensor({1.f}, Shape{1})); }, {"weft::take", "int32", "float32"});
  check_throws_with<ShapeError>([&] { (void)take(Tensor(1.0f), ints({0}, Shape{1})); }, {"weft::take", "rank"});
}

// ---------------------------------------------------------------- one_hot

TEST_CASE("one_hot: float32 rows on a new last axis; out-of-range labels give zero rows") {
  const Tensor h = one_hot(ints({0, 2, -1, 3}, Shape{4}), 3);
  CHECK(h.dtype() == DType::float32);
  check_close(h, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, Shape{4, 3});
  check_close(one_hot(ints({1, 0, 2, 1}, Shape{2, 2}), 2), {0, 1, 1, 0, 0, 0, 0, 1}, Shape{2, 2, 2});
  check_close(one_hot(ints({1}, Shape{}), 3), {0, 1, 0}, Shape{3});
  CHECK(one_hot(ints({}, Shape{0}), 5).shape() == Shape{0, 5});
  check_throws_with<ValueError>([] { (void)one_hot(ints({0}, Shape{1}), 0); }, {"weft::one_hot", "num_classes", "0"});
  check_throws_with<ValueError>([] { (void)one_hot(ints({0}, Shape{1}), -3); }, {"weft::one_hot", "-3"});
  check_throws_with<DTypeError>([] { (void)one_hot(Tensor({1.f}, Shape{1}), 3); }, {"weft::one_hot", "int32", "float32"});
  // A class count whose result overflows the element count or the byte size writes nothing.
  check_throws_with<ShapeError>([] { (void)one_hot(ints({3}, Shape{1}), 1LL << 62); }, {"(1, 4611686018427387904)", "bytes"});
  check_throws_with<ShapeError>([] { (void)one_hot(ints({0, 1, 2, 3}, Shape{4}), 1LL << 62); },
                                {"(4, 4611686018427387904)", "2^63 - 1 elements"});
}

// ---------------------------------------------------------------- determinism

TEST_CASE("take's scatter-add gradient and concat are bit-identical on 1 and 2 threads") {
  const Tensor table = pattern(Shape{64, 4096});
  std::vector<std::int32_t> iv;
  for (int i = 0; i < 300; ++i) iv.push_back((i * 37) % 64);
  const Tensor idx = ints(iv, Shape{300});
  auto run = [&] {
    return std::vector<Tensor>{grad([&](const Tensor& t) { return readout(take(t, idx)); })(table),
                               concat({table, table}, 1)};
  };
  check_same_on_1_and_2_threads(run);
}
