#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>

#include "../src/random_internal.hpp"
#include "reference/random_reference.inc"
#include "testing.hpp"
#include "weft/random.hpp"

using namespace weft;
using weft::testing::check_close;
using weft::testing::check_throws_with;

namespace {

using Words = std::array<std::uint32_t, 2>;

constexpr auto kClassic = ThreefryLayout::classic;
constexpr auto kPartitionable = ThreefryLayout::partitionable;
constexpr ThreefryLayout kLayouts[] = {ThreefryLayout::partitionable, ThreefryLayout::classic};

/// Word i of JAX's classic random_bits(key, n) (n < 2^32 - 1), straight from the definition:
/// counters 0..n-1 plus a 0 when n is odd, the first half paired with the second half.
std::uint32_t reference_word(Key key, std::int64_t n, std::int64_t i) {
  const std::int64_t half = (n + 1) / 2;
  const auto counter = [n](std::int64_t k) { return k < n ? static_cast<std::uint32_t>(k) : 0u; };
  const std::int64_t j = i < half ? i : i - half;
  const Words out = threefry2x32(key.words(), {counter(j), counter(j + half)});
  return i < half ? out[0] : out[1];
}

std::vector<std::uint32_t> reference_bits(Key key, std::int64_t n) {
  std::vector<std::uint32_t> w(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) w[static_cast<std::size_t>(i)] = reference_word(key, n, i);
  return w;
}

/// Word i of JAX's partitionable random_bits: y0 ^ y1 of threefry over the 64-bit counter i.
std::uint32_t partitionable_word(Key key, std::uint64_t i) {
  const Words out = threefry2x32(key.words(), {static_cast<std::uint32_t>(i >> 32), static_cast<std::uint32_t>(i)});
  return out[0] ^ out[1];
}

/// jax.random.uniform's [0, 1) float of a word, written out.
float unit_of(std::uint32_t bits) { return std::bit_cast<float>((bits >> 9) | 0x3f800000u) - 1.0f; }

struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<float>& v) {
  Moments m;
  for (const float x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (const float x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size());
  return m;
}

constexpr double kSqrt2 = std::numbers::sqrt2;

}  // namespace

TEST_CASE("random: threefry2x32 matches Random123's known-answer vectors") {
  CHECK(threefry2x32({0u, 0u}, {0u, 0u}) == Words{0x6b200159u, 0x99ba4efeu});
  CHECK(threefry2x32({0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}) == Words{0x1cb996fcu, 0xbb002be7u});
  CHECK(threefry2x32({0x13198a2eu, 0x03707344u}, {0x243f6a88u, 0x85a308d3u}) == Words{0xc4923a9cu, 0x483df7a0u});
}

TEST_CASE("random: Key holds the seed's high and low words") {
  CHECK(Key(0).words() == Words{0u, 0u});
  CHECK(Key(42).words() == Words{0u, 42u});
  CHECK(Key(0x0000000700000009ull).words() == Words{7u, 9u});
  CHECK(Key::from_words({3u, 4u}).words() == Words{3u, 4u});
  CHECK(Key(1) == Key::from_words({0u, 1u}));
  CHECK(Key(1) != Key(2));
  std::ostringstream os;
  os << Key::from_words({1u, 4294967295u});
  CHECK(os.str() == "Key([1, 4294967295])");
}

TEST_CASE("random: a key carries its layout; derived keys keep it; layouts never compare equal") {
  CHECK(Key(7).layout() == kPartitionable);  // the default, as JAX >= 0.5
  CHECK(Key::from_words({1u, 2u}).layout() == kPartitionable);
  CHECK(Key(7, kClassic).layout() == kClassic);
  CHECK(Key::from_words({1u, 2u}, kClassic).layout() == kClassic);
  CHECK(Key(7, kClassic).words() == Key(7).words());  // the seed's words are the same in both
  CHECK(Key(7, kClassic) != Key(7));
  CHECK(Key::from_words({1u, 2u}, kClassic) != Key::from_words({1u, 2u}));
  CHECK(fold_in(Key(7), 3) != fold_in(Key(7, kClassic), 3));  // same words, other layouts
  CHECK(fold_in(Key(7), 3).words() == fold_in(Key(7, kClassic), 3).words());
  for (const ThreefryLayout layout : kLayouts) {
    CAPTURE(layout);
    const Key key(11, layout);
    CHECK(fold_in(key, 5).layout() == layout);
    for (const Key& k : split(key, 3)) CHECK(k.layout() == layout);
    CHECK(split(fold_in(split(key)[1], 9), 4)[3].layout() == layout);
  }
  std::ostringstream os;
  os << Key::from_words({1u, 2u}, kClassic) << " " << kPartitionable;
  CHECK(os.str() == "Key([1, 2], classic) partitionable");
}

TEST_CASE("random: the examples of JAX's documentation in both layouts") {
  // key = jax.random.key(0); uniform(key); key, subkey = split(key); uniform(subkey)
  // jax_threefry_partitionable=True (the default since JAX 0.5), then False.
  check_close(uniform(Key(0), Shape{}), {0.947667f}, Shape{}, 1e-6f, 1e-6f);
  check_close(uniform(split(Key(0))[1], Shape{}), {0.00729382f}, Shape{}, 1e-8f, 1e-6f);
  check_close(uniform(Key(0, kClassic), Shape{}), {0.41845703f}, Shape{}, 1e-7f, 1e-6f);
  check_close(uniform(split(Key(0, kClassic))[1], Shape{}), {0.10536897f}, Shape{}, 1e-7f, 1e-6f);
}

TEST_CASE("random (partitionable): split is threefry over (0, i); bits are y0 ^ y1 over the element index") {
  const Key key(42);
  const auto three = split(key, 3);
  REQUIRE(three.size() == 3);
  for (std::uint32_t i = 0; i < 3; ++i) CHECK(three[i].words() == threefry2x32(key.words(), {0u, i}));
  // Fold-like: the first keys do not depend on how many are drawn.
  CHECK(split(key, 5)[2] == three[2]);
  CHECK(split(key, 0).empty());
  const Key k2(1234);
  for (const std::int64_t n : {std::int64_t{1}, std::int64_t{6}, std::int64_t{7}, std::int64_t{100003}}) {
    CAPTURE(n);
    const auto bits = random_bits(k2, n);
    REQUIRE(bits.size() == static_cast<std::size_t>(n));
    bool all = true;
    for (std::int64_t i = 0; i < n; ++i) all = all && bits[static_cast<std::size_t>(i)] == partitionable_word(k2, static_cast<std::uint64_t>(i));
    CHECK(all);
  }
  // A prefix of a longer draw is the shorter draw.
  const auto long_bits = random_bits(k2, 1000), short_bits = random_bits(k2, 10);
  CHECK(std::equal(short_bits.begin(), short_bits.end(), long_bits.begin()));
  // Ranges where the counter's low word wraps into the high word (element 2^32 and on).
  const std::int64_t start = (std::int64_t{1} << 32) - 5;
  std::vector<std::uint32_t> words(600);
  detail::partitionable_bits(k2, start, start + 600, words.data());
  for (std::int64_t i = 0; i < 600; ++i) {
    INFO("element " << start + i);
    CHECK(words[static_cast<std::size_t>(i)] == partitionable_word(k2, static_cast<std::uint64_t>(start + i)));
  }
  CHECK(words[5] == partitionable_word(k2, std::uint64_t{1} << 32));
}

TEST_CASE("random: reference values of both layouts (test/reference/random_reference.py)") {
  const auto words_of = [](const std::vector<Key>& keys) {
    std::vector<std::uint32_t> w;
    for (const Key& k : keys) w.insert(w.end(), {k.words()[0], k.words()[1]});
    return w;
  };
  const auto as_vector = [](const auto& array) { return std::vector(std::begin(array), std::end(array)); };
  const auto check_layout = [&](ThreefryLayout layout, const auto& ref) {
    CAPTURE(layout);
    const Key key0(0, layout), key42(42, layout), key1234(1234, layout);
    CHECK(words_of(split(key0)) == as_vector(ref.split_key0));
    CHECK(words_of(split(key42, 3)) == as_vector(ref.split_key42_3));
    CHECK(fold_in(key0, 1).words() == Words{ref.fold_in_key0_1[0], ref.fold_in_key0_1[1]});
    CHECK(random_bits(key1234, 7) == as_vector(ref.bits_key1234_7));
    check_close(uniform(key0, Shape{4}), as_vector(ref.uniform_key0_4), Shape{4}, 0.0f, 0.0f);  // exact
    check_close(uniform(split(key0)[1], Shape{}), as_vector(ref.uniform_subkey0), Shape{}, 0.0f, 0.0f);
    check_close(uniform(key42, Shape{5}, -2.0f, 3.0f), as_vector(ref.uniform_key42_m2_3), Shape{5}, 1e-6f, 1e-6f);
    check_close(normal(key0, Shape{5}), as_vector(ref.normal_key0_5), Shape{5}, 2e-7f, 2e-7f);
    check_close(truncated_normal(key42, -0.5f, 1.5f, Shape{6}), as_vector(ref.truncated_normal_key42_6), Shape{6}, 2e-7f,
                2e-7f);
    CHECK(bernoulli(key1234, 0.3f, Shape{12}).to_int_vector() == as_vector(ref.bernoulli_key1234_03_12));
    CHECK(permutation(key0, 10).to_int_vector() == as_vector(ref.permutation_key0_10));
  };
  check_layout(kPartitionable, weft_reference::partitionable{});
  check_layout(kClassic, weft_reference::classic{});
}

TEST_CASE("random (classic): split matches JAX and its word layout") {
  // jax.random.split(jax.random.PRNGKey(0, kClassic))
  const auto keys = split(Key(0, kClassic));
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].words() == Words{4146024105u, 967050713u});
  CHECK(keys[1].words() == Words{2718843009u, 1272950319u});
  // By hand: counters (0, 2) and (1, 3); all first words, then all second words.
  const Words o0 = threefry2x32({0u, 0u}, {0u, 2u}), o1 = threefry2x32({0u, 0u}, {1u, 3u});
  CHECK(keys[0].words() == Words{o0[0], o1[0]});
  CHECK(keys[1].words() == Words{o0[1], o1[1]});

  // split(Key(42, kClassic), 3), word by word: pairs (0, 3), (1, 4), (2, 5).
  const Words k = Key(42, kClassic).words();
  const Words p0 = threefry2x32(k, {0u, 3u}), p1 = threefry2x32(k, {1u, 4u}), p2 = threefry2x32(k, {2u, 5u});
  const std::uint32_t words[6] = {p0[0], p1[0], p2[0], p0[1], p1[1], p2[1]};
  const auto three = split(Key(42, kClassic), 3);
  REQUIRE(three.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(three[i].words() == Words{words[2 * i], words[2 * i + 1]});

  CHECK(split(Key(5, kClassic), 0).empty());
  const auto one = split(Key(5, kClassic), 1);
  REQUIRE(one.size() == 1);
  CHECK(one[0].words() == threefry2x32(Key(5, kClassic).words(), {0u, 1u}));
  // Different keys and different counts give different keys.
  CHECK(split(Key(42, kClassic), 3)[0] != split(Key(43, kClassic), 3)[0]);
  CHECK(split(Key(42, kClassic), 4)[0] != three[0]);
}

TEST_CASE("random: fold_in is threefry of (0, data)") {
  CHECK(fold_in(Key(42), 7).words() == threefry2x32(Key(42).words(), {0u, 7u}));
  CHECK(fold_in(Key(0), 1).words() == Words{928981903u, 3453687069u});
  CHECK(fold_in(Key(42), 7) != fold_in(Key(42), 8));
  CHECK(fold_in(Key(42), 7) == fold_in(Key(42), 7));
}

TEST_CASE("random (classic): random_bits layout for even and odd counts") {
  const Key key(1234, kClassic);
  const Words k = key.words();
  {  // n = 6: pairs (0, 3), (1, 4), (2, 5)
    const Words a = threefry2x32(k, {0u, 3u}), b = threefry2x32(k, {1u, 4u}), c = threefry2x32(k, {2u, 5u});
    CHECK(random_bits(key, 6) == std::vector<std::uint32_t>{a[0], b[0], c[0], a[1], b[1], c[1]});
  }
  {  // n = 7: counters 0..6 and a padded 0, pairs (0, 4), (1, 5), (2, 6), (3, 0); cut to 7 words
    const Words a = threefry2x32(k, {0u, 4u}), b = threefry2x32(k, {1u, 5u}), c = threefry2x32(k, {2u, 6u}),
                d = threefry2x32(k, {3u, 0u});
    CHECK(random_bits(key, 7) == std::vector<std::uint32_t>{a[0], b[0], c[0], d[0], a[1], b[1], c[1]});
  }
  CHECK(random_bits(key, 1) == std::vector<std::uint32_t>{threefry2x32(k, {0u, 0u})[0]});
  CHECK(random_bits(key, 2) == std::vector<std::uint32_t>{threefry2x32(k, {0u, 1u})[0], threefry2x32(k, {0u, 1u})[1]});
  CHECK(random_bits(key, 0).empty());
  // Long streams (several parallel chunks, vector loops and their remainders) word by word.
  for (const std::int64_t n : {std::int64_t{33}, std::int64_t{100003}, std::int64_t{131072}}) {
    INFO("n = " << n);
    CHECK(random_bits(key, n) == reference_bits(key, n));
  }
  // The span overload fills the same words.
  std::vector<std::uint32_t> out(1001);
  random_bits(key, out);
  CHECK(out == reference_bits(key, 1001));
}

TEST_CASE("random: random_bits does not depend on the thread count") {
  const int saved = omp_get_max_threads();
  for (const ThreefryLayout layout : kLayouts) {
    CAPTURE(layout);
    const Key key(9, layout);
    omp_set_num_threads(1);
    const auto bits1 = random_bits(key, 300001);
    const auto u1 = uniform(key, Shape{300001}).to_vector();
    const auto n1 = normal(key, Shape{70001}).to_vector();
    omp_set_num_threads(2);
    const auto bits2 = random_bits(key, 300001);
    const auto u2 = uniform(key, Shape{300001}).to_vector();
    const auto n2 = normal(key, Shape{70001}).to_vector();
    CHECK(bits1 == bits2);
    CHECK(u1 == u2);
    CHECK(n1 == n2);
  }
  omp_set_num_threads(saved);
}

TEST_CASE("random internals (classic): streams of 2^32 - 1 words or more are drawn in blocks under split keys") {
  // JAX's blocking, with the block length shrunk from 0xffffffff to 5 and to 8.
  const Key key(77, kClassic);
  const std::int64_t n = 23;  // 4 full blocks of 5 and a remainder of 3: split into 5 keys
  const auto keys = split(key, 5);
  std::vector<std::uint32_t> expected;
  for (std::size_t b = 0; b < 5; ++b) {
    const auto part = random_bits(keys[b], b < 4 ? 5 : 3);
    expected.insert(expected.end(), part.begin(), part.end());
  }
  std::vector<std::uint32_t> out(static_cast<std::size_t>(n));
  detail::random_bits_blocked(key, out, 5);
  CHECK(out == expected);
  std::vector<std::uint32_t> via_sink(static_cast<std::size_t>(n));
  detail::for_each_bits(
      key, n,
      [&](std::int64_t offset, const std::uint32_t* bits, std::int64_t count) {
        std::copy_n(bits, count, via_sink.begin() + offset);
      },
      5);
  CHECK(via_sink == expected);

  // An exact multiple: 2 blocks of 8 and an empty remainder (its key unused).
  const auto keys3 = split(key, 3);
  auto expected16 = random_bits(keys3[0], 8);
  const auto second = random_bits(keys3[1], 8);
  expected16.insert(expected16.end(), second.begin(), second.end());
  std::vector<std::uint32_t> out16(16);
  detail::random_bits_blocked(key, out16, 8);
  CHECK(out16 == expected16);
}

TEST_CASE("random internals (classic): threefry_pairs and random_bits_pairs give the stream's pairs") {
  const Key key(5, kClassic);
  const std::int64_t n = 2001, half = 1001;  // odd: pair 1000 holds the padded counter
  std::vector<std::uint32_t> first(300), second(300);
  detail::threefry_pairs(key, static_cast<std::uint32_t>(half), 17, 317, first.data(), second.data());
  for (std::int64_t j = 17; j < 317; ++j) {
    const Words w = threefry2x32(key.words(), {static_cast<std::uint32_t>(j), static_cast<std::uint32_t>(j + half)});
    CHECK(first[static_cast<std::size_t>(j - 17)] == w[0]);
    CHECK(second[static_cast<std::size_t>(j - 17)] == w[1]);
  }
  detail::random_bits_pairs(key, n, 990, 1001, first.data(), second.data());
  for (std::int64_t j = 990; j < 1001; ++j) {
    CHECK(first[static_cast<std::size_t>(j - 990)] == reference_word(key, n, j));
    if (j + half < n) CHECK(second[static_cast<std::size_t>(j - 990)] == reference_word(key, n, j + half));
  }
  CHECK(first[10] == threefry2x32(key.words(), {1000u, 0u})[0]);
  // The float helpers: 23 mantissa bits, [0, 1).
  CHECK(detail::unit_float(0u) == 0.0f);
  CHECK(detail::unit_float(0xffffffffu) == 1.0f - std::ldexp(1.0f, -23));
  CHECK(detail::unit_float(0x80000000u) == 0.5f);
  CHECK(detail::uniform_float(0u, -2.0f, 5.0f) == -2.0f);
  CHECK(detail::uniform_float(0x80000000u, -2.0f, 5.0f) == 0.5f);
}

TEST_CASE("random: uniform is the mantissa formula over random_bits") {
  for (const ThreefryLayout layout : kLayouts) {
    CAPTURE(layout);
    const Key key(3, layout);
    const auto bits = random_bits(key, 10);
    const Tensor u = uniform(key, Shape{2, 5});
    CHECK(u.shape() == Shape{2, 5});
    CHECK(u.dtype() == DType::float32);
    const auto v = u.to_vector();
    for (std::size_t i = 0; i < 10; ++i) CHECK(v[i] == unit_of(bits[i]));  // exact on [0, 1)
    // Scaled: u * (hi - lo) + lo, within the rounding of one multiply-add.
    std::vector<float> expected;
    for (const auto b : bits) expected.push_back(unit_of(b) * 5.0f - 2.0f);
    check_close(uniform(key, Shape{2, 5}, -2.0f, 3.0f), expected, Shape{2, 5}, 1e-6f, 1e-6f);
    for (const float x : uniform(key, Shape{1000}, -2.0f, 3.0f).to_vector()) {
      CHECK(x >= -2.0f);
      CHECK(x < 3.0f);
    }
    CHECK(uniform(key, Shape{}).shape() == Shape{});
    CHECK(uniform(key, Shape{0, 3}).size() == 0);
  }
  // jax.random.uniform(jax.random.PRNGKey(0), (4,)), classic layout
  check_close(uniform(Key(0, kClassic), Shape{4}), {0.9653214f, 0.22515893f, 0.63302994f, 0.29638183f}, Shape{4}, 1e-7f, 0);
}

TEST_CASE("random: erfinv inverts erf to float precision") {
  CHECK(detail::erfinv(0.0f) == 0.0f);
  CHECK(detail::erfinv(1.0f) == std::numeric_limits<float>::max());
  CHECK(detail::erfinv(-1.0f) == -std::numeric_limits<float>::max());
  CHECK(std::isnan(detail::erfinv(1.5f)));
  // Both branches of the polynomial: w = -log(1 - x^2) < 5 below |x| = 0.99662.
  std::vector<float> xs;
  for (int i = -999; i <= 999; ++i) xs.push_back(static_cast<float>(i) / 1000.0f);
  for (const float x : {1e-6f, 1e-3f, 0.9966f, 0.9967f, 0.9999f, 0.999999f, std::nextafter(1.0f, 0.0f)}) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  for (const float x : xs) {
    const float y = detail::erfinv(x);
    INFO("x = " << x << ", erfinv(x) = " << y);
    CHECK(detail::erfinv(-x) == -y);
    CHECK(std::fabs(std::erf(static_cast<double>(y)) - x) <= 1e-6 * std::fabs(x) + 1e-9);
  }
}

TEST_CASE("random: normal is sqrt(2) erfinv of a uniform on (-1, 1), as JAX") {
  // The examples of JAX's documentation before JAX 0.5 (classic layout): jax.random.normal(key(0),
  // (3,)) and key(123).
  check_close(normal(Key(0, kClassic), Shape{3}), {1.8160863f, -0.48262316f, 0.33988908f}, Shape{3}, 2e-7f, 2e-7f);
  check_close(normal(Key(123, kClassic), Shape{3}), {-0.1470326f, 0.5524756f, 1.648498f}, Shape{3}, 2e-7f, 2e-7f);
  // Value by value from the bits: erf(z / sqrt 2) gives back u = 2 * unit - (1 - 2^-24).
  for (const ThreefryLayout layout : kLayouts) {
    CAPTURE(layout);
    const Key key(11, layout);
    const auto bits = random_bits(key, 64);
    const auto z = normal(key, Shape{8, 8}).to_vector();
    const float lo = std::nextafter(-1.0f, 0.0f);
    for (std::size_t i = 0; i < 64; ++i) {
      const double u = static_cast<double>(unit_of(bits[i]) * (1.0f - lo) + lo);
      INFO("element " << i << ": u = " << u << ", z = " << z[i]);
      CHECK(std::fabs(std::erf(z[i] / kSqrt2) - u) <= 1e-6 * std::fabs(u) + 1e-7);
      CHECK(std::isfinite(z[i]));
    }
  }
}

TEST_CASE("random: truncated_normal is an inverse-CDF sample between the bounds") {
  for (const ThreefryLayout layout : kLayouts) {
    CAPTURE(layout);
    const Key key(21, layout);
    const float lower = -0.5f, upper = 1.5f;
    const auto bits = random_bits(key, 50);
    const auto z = truncated_normal(key, lower, upper, Shape{50}).to_vector();
    const double a = std::erf(lower / kSqrt2), b = std::erf(upper / kSqrt2);
    for (std::size_t i = 0; i < 50; ++i) {
      const double u = a + unit_of(bits[i]) * (b - a);
      INFO("element " << i << ": u = " << u << ", z = " << z[i]);
      CHECK(std::fabs(std::erf(z[i] / kSqrt2) - u) <= 2e-6 * std::fabs(u) + 1e-7);
      CHECK(z[i] > lower);
      CHECK(z[i] < upper);
    }
    // A window far in the tail: erf saturates, yet results stay strictly inside.
    for (const float x : truncated_normal(key, 5.0f, 6.0f, Shape{100}).to_vector()) {
      CHECK(x > 5.0f);
      CHECK(x < 6.0f);
    }
    // Unbounded on one side.
    for (const float x : truncated_normal(key, -std::numeric_limits<float>::infinity(), 0.0f, Shape{100}).to_vector()) {
      CHECK(std::isfinite(x));
      CHECK(x < 0.0f);
    }
  }
}

TEST_CASE("random: bernoulli is the mask uniform < p") {
  for (const ThreefryLayout layout : kLayouts) {
    CAPTURE(layout);
    const Key key(8, layout);
    const Tensor m = bernoulli(key, 0.3f, Shape{4, 25});
    CHECK(m.dtype() == DType::int32);
    CHECK(m.shape() == Shape{4, 25});
    const auto bits = random_bits(key, 100);
    const auto mv = m.to_int_vector();
    for (std::size_t i = 0; i < 100; ++i) CHECK(mv[i] == (unit_of(bits[i]) < 0.3f ? 1 : 0));
    const auto zeros = bernoulli(key, 0.0f, Shape{1000}).to_int_vector();
    CHECK(std::all_of(zeros.begin(), zeros.end(), [](int x) { return x == 0; }));
    const auto ones = bernoulli(key, 1.0f, Shape{1000}).to_int_vector();
    CHECK(std::all_of(ones.begin(), ones.end(), [](int x) { return x == 1; }));
  }
}

TEST_CASE("random: distributions have the right moments on large samples") {
  const std::int64_t n = 1 << 20;
  const double rn = std::sqrt(static_cast<double>(n));
  {  // uniform: mean 1/2, variance 1/12 (standard error of the variance sqrt((1/80 - 1/144) / n))
    const auto m = moments(uniform(Key(100), Shape{n}).to_vector());
    CHECK(std::fabs(m.mean - 0.5) < 5 * std::sqrt(1.0 / 12) / rn);
    CHECK(std::fabs(m.var - 1.0 / 12) < 5 * std::sqrt(1.0 / 80 - 1.0 / 144) / rn);
  }
  {  // normal: mean 0, variance 1 (standard error sqrt(2 / n)), 68.27% within one sigma
    const auto v = normal(Key(101), Shape{n}).to_vector();
    const auto m = moments(v);
    CHECK(std::fabs(m.mean) < 5 / rn);
    CHECK(std::fabs(m.var - 1) < 5 * std::sqrt(2.0) / rn);
    const double p1 = std::erf(1 / kSqrt2);
    const auto within = std::count_if(v.begin(), v.end(), [](float x) { return std::fabs(x) < 1.0f; });
    CHECK(std::fabs(static_cast<double>(within) / n - p1) < 5 * std::sqrt(p1 * (1 - p1)) / rn);
  }
  {  // truncated to [-1, 1]: mean 0, variance 1 - 2 phi(1) / (Phi(1) - Phi(-1))
    const auto v = truncated_normal(Key(102), -1.0f, 1.0f, Shape{n}).to_vector();
    const auto m = moments(v);
    const double phi1 = std::exp(-0.5) / std::sqrt(2 * std::numbers::pi), mass = std::erf(1 / kSqrt2);
    const double var = 1 - 2 * phi1 / mass;
    CHECK(std::fabs(m.mean) < 5 * std::sqrt(var) / rn);
    CHECK(std::fabs(m.var - var) < 0.01 * var);
    CHECK(*std::min_element(v.begin(), v.end()) > -1.0f);
    CHECK(*std::max_element(v.begin(), v.end()) < 1.0f);
  }
  {  // bernoulli(0.3): frequency within 5 standard errors
    const auto mv = bernoulli(Key(103), 0.3f, Shape{n}).to_int_vector();
    const double freq = static_cast<double>(std::count(mv.begin(), mv.end(), 1)) / n;
    CHECK(std::fabs(freq - 0.3) < 5 * std::sqrt(0.3 * 0.7) / rn);
  }
  {  // every bit of random_bits is set half the time
    const auto bits = random_bits(Key(104), n);
    for (int b = 0; b < 32; ++b) {
      const auto set = std::count_if(bits.begin(), bits.end(), [b](std::uint32_t w) { return (w >> b) & 1u; });
      INFO("bit " << b);
      CHECK(std::fabs(static_cast<double>(set) / n - 0.5) < 5 * 0.5 / rn);
    }
  }
  {  // streams of split keys (and of a key and its fold_in) are uncorrelated
    const auto keys = split(Key(105));
    const auto corr = [&](Key k1, Key k2) {
      const auto x = normal(k1, Shape{n}).to_vector(), y = normal(k2, Shape{n}).to_vector();
      double sxy = 0;
      for (std::size_t i = 0; i < x.size(); ++i) sxy += static_cast<double>(x[i]) * y[i];
      return sxy / n;  // both have mean 0 and variance 1
    };
    CHECK(std::fabs(corr(keys[0], keys[1])) < 5 / rn);
    CHECK(std::fabs(corr(Key(105), keys[0])) < 5 / rn);
    CHECK(std::fabs(corr(keys[0], fold_in(keys[0], 1))) < 5 / rn);
  }
}

TEST_CASE("random: permutation shuffles as jax.random.permutation") {
  // One round for n <= 1625: (key, subkey) = split(key); stable sort of arange(n) by random_bits(subkey, n).
  const auto by_hand = [](Key key, std::int64_t n, int rounds) {
    std::vector<std::int32_t> x(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::int32_t>(i);
    for (int r = 0; r < rounds; ++r) {
      const auto keys = split(key);
      key = keys[0];
      const auto sort_keys = random_bits(keys[1], n);
      std::vector<std::size_t> idx(x.size());
      for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return sort_keys[a] < sort_keys[b]; });
      std::vector<std::int32_t> next;
      for (const auto i : idx) next.push_back(x[i]);
      x = next;
    }
    return x;
  };
  for (const ThreefryLayout layout : kLayouts) {
    CAPTURE(layout);
    const Tensor p = permutation(Key(0, layout), 10);
    CHECK(p.dtype() == DType::int32);
    CHECK(p.shape() == Shape{10});
    CHECK(p.to_int_vector() == by_hand(Key(0, layout), 10, 1));
    CHECK(permutation(Key(4, layout), 1625).to_int_vector() == by_hand(Key(4, layout), 1625, 1));
    CHECK(permutation(Key(4, layout), 1626).to_int_vector() == by_hand(Key(4, layout), 1626, 2));  // 3 ln n / ln(2^32 - 1) > 1

    const auto v = permutation(Key(7, layout), 5000).to_int_vector();
    auto sorted = v;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i) CHECK(sorted[i] == static_cast<std::int32_t>(i));
    CHECK(permutation(Key(7, layout), 5000).to_int_vector() == v);
    CHECK(permutation(Key(8, layout), 5000).to_int_vector() != v);
    CHECK(permutation(Key(7, layout), 0).shape() == Shape{0});
    CHECK(permutation(Key(7, layout), 1).to_int_vector() == std::vector<std::int32_t>{0});
  }
}

TEST_CASE("random: functions reject bad arguments with a useful message") {
  const Key key(1);
  check_throws_with<ValueError>([&] { (void)random_bits(key, -1); }, {"random_bits", "-1"});
  check_throws_with<ValueError>([&] { (void)split(key, -2); }, {"split", "-2"});
  check_throws_with<ValueError>([&] { (void)permutation(key, -3); }, {"permutation", "-3"});
  check_throws_with<ValueError>([&] { (void)permutation(key, std::int64_t{1} << 31); }, {"permutation", "int32"});
  check_throws_with<ValueError>([&] { (void)bernoulli(key, 1.5f, Shape{3}); }, {"bernoulli", "1.5", "[0, 1]"});
  check_throws_with<ValueError>([&] { (void)bernoulli(key, -0.1f, Shape{3}); }, {"bernoulli", "-0.1", "[0, 1]"});
  check_throws_with<ValueError>([&] { (void)bernoulli(key, std::nanf(""), Shape{3}); }, {"bernoulli", "nan"});
  check_throws_with<ValueError>([&] { (void)truncated_normal(key, 1.0f, 1.0f, Shape{3}); },
                                {"truncated_normal", "lower (1)", "upper (1)"});
  check_throws_with<ValueError>([&] { (void)truncated_normal(key, 2.0f, -2.0f, Shape{3}); },
                                {"truncated_normal", "lower (2)", "upper (-2)"});
  check_throws_with<ValueError>([&] { (void)uniform(key, Shape{3}, 1.0f, 0.0f); }, {"uniform", "[1, 0)", "lo < hi"});
  check_throws_with<ValueError>(
      [&] { (void)uniform(key, Shape{3}, 0.0f, std::numeric_limits<float>::infinity()); }, {"uniform", "inf"});
}
