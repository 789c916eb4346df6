// Counter-based random numbers in JAX's two threefry layouts (jax_threefry_partitionable on and off).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "jit/trace.hpp"
#include "random_internal.hpp"
#include "tensor_impl.hpp"

namespace weft {

namespace {

constexpr float kSqrt2 = 1.41421356237309504880f;  // np.float32(np.sqrt(2))

std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

/// A float32 tensor of `shape` whose element i is f(word i of random_bits(key, numel)).
template <class F>
Tensor map_bits(Key key, const Shape& shape, F f) {
  Tensor out = detail::empty(shape, DType::float32);
  float* po = detail::mutable_data<float>(out);
  detail::for_each_bits(key, shape.numel(), [&](std::int64_t offset, const std::uint32_t* bits, std::int64_t count) {
    float* dst = po + offset;
    for (std::int64_t i = 0; i < count; ++i) dst[i] = f(bits[i]);
  });
  return out;
}

}  // namespace

std::array<std::uint32_t, 2> threefry2x32(std::array<std::uint32_t, 2> key,
                                          std::array<std::uint32_t, 2> counter) {
  if (detail::recording_tracer != nullptr) [[unlikely]]
    detail::recording_tracer->check_key(key, "weft::threefry2x32");
  detail::threefry20(key[0], key[1], counter[0], counter[1]);
  return counter;
}

std::ostream& operator<<(std::ostream& os, ThreefryLayout layout) {
  return os << (layout == ThreefryLayout::partitionable ? "partitionable" : "classic");
}

std::ostream& operator<<(std::ostream& os, const Key& key) {
  const auto w = key.words();
  os << "Key([" << w[0] << ", " << w[1] << "]";
  if (key.layout() != ThreefryLayout::partitionable) os << ", " << key.layout();
  return os << ")";
}

namespace {
std::vector<Key> split_key(Key key, int n);
}  // namespace

std::vector<Key> split(Key key, int n) {
  return detail::traced("split", [n](Key k) { return split_key(k, n); }, key);
}

Key fold_in(Key key, std::uint32_t data) {
  return detail::traced(
      "fold_in", [data](Key k) { return Key::from_words(threefry2x32(k.words(), {0u, data}), k.layout()); }, key);
}

namespace {

std::vector<Key> split_key(Key key, int n) {
  if (n < 0)
    throw ValueError(fmt::format("weft::split: cannot split a key into {} keys; the count must be 0 or more (2 gives a "
                                 "new key and a subkey)",
                                 n));
  std::vector<Key> keys;
  keys.reserve(static_cast<std::size_t>(n));
  if (key.layout() == ThreefryLayout::partitionable) {
    // JAX's _threefry_split_foldlike: key i is threefry over the 64-bit counter i (n < 2^32).
    for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n); ++i)
      keys.push_back(Key::from_words(threefry2x32(key.words(), {0u, i}), key.layout()));
    return keys;
  }
  // JAX draws the 2n words from threefry_2x32 over iota(2n) directly; 2n < 0xffffffff for any
  // int n, so random_bits (which would block longer streams) gives the same words.
  const std::vector<std::uint32_t> words = random_bits(key, 2 * static_cast<std::int64_t>(n));
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i)
    keys.push_back(Key::from_words({words[2 * i], words[2 * i + 1]}, key.layout()));
  return keys;
}

}  // namespace

namespace detail {

void threefry_xor(Key key, std::uint32_t hi, std::uint32_t lo, std::int64_t m, std::uint32_t* out) noexcept {
  const auto [k0, k1] = key.words();
  for (std::int64_t i = 0; i < m; ++i) {
    std::uint32_t x0 = hi;
    std::uint32_t x1 = lo + static_cast<std::uint32_t>(i);
    threefry20(k0, k1, x0, x1);
    out[i] = x0 ^ x1;
  }
}

void threefry_pairs(Key key, std::uint32_t half, std::int64_t j0, std::int64_t j1, std::uint32_t* first,
                    std::uint32_t* second) noexcept {
  const auto [k0, k1] = key.words();
  const auto base = static_cast<std::uint32_t>(j0);
  const auto m = static_cast<std::uint32_t>(std::max<std::int64_t>(0, j1 - j0));
  for (std::uint32_t i = 0; i < m; ++i) {
    std::uint32_t x0 = base + i;
    std::uint32_t x1 = x0 + half;
    threefry20(k0, k1, x0, x1);
    first[i] = x0;
    second[i] = x1;
  }
}

float erfinv(float x) noexcept {
  // XLA's ErfInv32, operation for operation.
  constexpr float lt5[9] = {2.81022636e-08f,  3.43273939e-07f, -3.5233877e-06f, -4.39150654e-06f, 0.00021858087f,
                            -0.00125372503f, -0.00417768164f, 0.246640727f,     1.50140941f};
  constexpr float ge5[9] = {-0.000200214257f, 0.000100950558f, 0.00134934322f, -0.00367342844f, 0.00573950773f,
                            -0.0076224613f,   0.00943887047f,  1.00167406f,    2.83297682f};
  if (std::fabs(x) == 1.0f) return x * std::numeric_limits<float>::max();
  float w = -std::log1p(-x * x);
  const bool small = w < 5.0f;
  const float* c = small ? lt5 : ge5;
  w = small ? w - 2.5f : std::sqrt(w) - 3.0f;
  float p = c[0];
  for (int i = 1; i < 9; ++i) p = c[i] + p * w;
  return p * x;
}

}  // namespace detail

void detail::random_bits_blocked(Key key, std::span<std::uint32_t> out, std::int64_t block_words) {
  // Straight into `out` (no tile): the first words of the pairs are the first half of each block,
  // the second words the second half.
  detail::for_each_block(key, static_cast<std::int64_t>(out.size()), block_words,
                         [&](Key k, std::int64_t base, std::int64_t len) {
                           std::uint32_t* dst = out.data() + base;
                           const std::int64_t half = (len + 1) / 2, full = len / 2;
                           detail::parallel_for(full, detail::kBitsGrain, [&](std::int64_t p0, std::int64_t p1) {
                             detail::threefry_pairs(k, static_cast<std::uint32_t>(half), p0, p1, dst + p0,
                                                    dst + half + p0);
                           });
                           if (len % 2 == 1)  // the pair with the padded counter: its second word is dropped
                             dst[full] = threefry2x32(k.words(), {static_cast<std::uint32_t>(full), 0u})[0];
                         });
}

void random_bits(Key key, std::span<std::uint32_t> out) {
  if (detail::recording_tracer != nullptr) [[unlikely]]
    detail::recording_tracer->check_key(key.words(), "weft::random_bits");
  if (key.layout() == ThreefryLayout::classic) {
    detail::random_bits_blocked(key, out, detail::kBlockWords);
    return;
  }
  detail::parallel_for(static_cast<std::int64_t>(out.size()), detail::kBitsGrain, [&](std::int64_t i0, std::int64_t i1) {
    detail::partitionable_bits(key, i0, i1, out.data() + i0);
  });
}

std::vector<std::uint32_t> random_bits(Key key, std::int64_t n) {
  if (n < 0)
    throw ValueError(fmt::format("weft::random_bits: cannot draw {} words; the count must be 0 or more", n));
  std::vector<std::uint32_t> out(static_cast<std::size_t>(n));
  random_bits(key, out);
  return out;
}

static Tensor uniform_draw(Key key, const Shape& shape, float lo, float hi) {
  const float scale = hi - lo;
  if (!(lo < hi) || !std::isfinite(scale))
    throw ValueError(fmt::format("weft::uniform: the interval [lo, hi) = [{}, {}) is empty or not "
                                 "finite; give finite bounds with lo < hi", num(lo), num(hi)));
  return map_bits(key, shape, [lo, scale](std::uint32_t b) { return detail::uniform_float(b, lo, scale); });
}

static Tensor normal_draw(Key key, const Shape& shape) {
  // u in [nextafter(-1, 0), 1) so that erfinv stays finite, as jax.random.normal.
  const float lo = std::nextafter(-1.0f, 0.0f);
  const float scale = 1.0f - lo;
  return map_bits(key, shape,
                  [lo, scale](std::uint32_t b) { return kSqrt2 * detail::erfinv(detail::uniform_float(b, lo, scale)); });
}

static Tensor truncated_normal_draw(Key key, float lower, float upper, const Shape& shape) {
  if (!(lower < upper))
    throw ValueError(fmt::format("weft::truncated_normal: lower ({}) must be below upper ({}); give a "
                                 "non-empty window, for example lower = -2, upper = 2", num(lower), num(upper)));
  // Inverse-CDF sampling of a uniform between the normal CDFs of the bounds, as
  // jax.random.truncated_normal; the clip keeps rounding from reaching the bounds.
  const float a = std::erf(lower / kSqrt2), b = std::erf(upper / kSqrt2);
  const float scale = b - a;
  const float lo_clip = std::nextafter(lower, std::numeric_limits<float>::infinity());
  const float hi_clip = std::nextafter(upper, -std::numeric_limits<float>::infinity());
  return map_bits(key, shape, [=](std::uint32_t bits) {
    const float v = kSqrt2 * detail::erfinv(detail::uniform_float(bits, a, scale));
    return std::min(std::max(v, lo_clip), hi_clip);
  });
}

static Tensor bernoulli_draw(Key key, float p, const Shape& shape) {
  if (!(p >= 0.0f && p <= 1.0f))
    throw ValueError(fmt::format("weft::bernoulli: p = {} is not a probability; give p in [0, 1]", num(p)));
  Tensor out = detail::empty(shape, DType::int32);
  std::int32_t* po = detail::mutable_data<std::int32_t>(out);
  detail::for_each_bits(key, shape.numel(), [&](std::int64_t offset, const std::uint32_t* bits, std::int64_t count) {
    std::int32_t* dst = po + offset;
    for (std::int64_t i = 0; i < count; ++i) dst[i] = detail::unit_float(bits[i]) < p ? 1 : 0;
  });
  return out;
}

static Tensor permutation_draw(Key key, std::int64_t n) {
  if (n < 0)
    throw ValueError(fmt::format("weft::permutation: cannot permute {} elements; n must be 0 or more", n));
  if (n > std::numeric_limits<std::int32_t>::max())
    throw ValueError(fmt::format("weft::permutation: n = {} does not fit the int32 result; permute at most 2^31 - 1 "
                                 "elements",
                                 n));
  // jax.random.permutation's shuffle: a few rounds of sorting by fresh random words, enough
  // rounds that ties (which keep the previous order) are unlikely over all n elements.
  const auto rounds = static_cast<int>(std::ceil(3.0 * std::log(static_cast<double>(std::max<std::int64_t>(1, n))) /
                                                 std::log(static_cast<double>(std::numeric_limits<std::uint32_t>::max()))));
  const auto size = static_cast<std::size_t>(n);
  std::vector<std::int32_t> x(size), next(size);
  std::iota(x.begin(), x.end(), 0);
  std::vector<std::uint64_t> order(size);  // (sort word << 32) | position: unique, so a plain sort is stable
  for (int r = 0; r < rounds; ++r) {
    const auto keys = split(key);
    key = keys[0];
    const std::vector<std::uint32_t> words = random_bits(keys[1], n);
    for (std::size_t i = 0; i < size; ++i) order[i] = (std::uint64_t{words[i]} << 32) | i;
    std::sort(order.begin(), order.end());
    for (std::size_t i = 0; i < size; ++i) next[i] = x[order[i] & 0xffffffffu];
    std::swap(x, next);
  }
  return Tensor(std::move(x), Shape{n});
}

// The draws as weft::jit sees them: one op each, whose input is the key.
Tensor uniform(Key key, const Shape& shape, float lo, float hi) {
  return detail::traced("uniform", [shape, lo, hi](Key k) { return uniform_draw(k, shape, lo, hi); }, key);
}
Tensor normal(Key key, const Shape& shape) {
  return detail::traced("normal", [shape](Key k) { return normal_draw(k, shape); }, key);
}
Tensor truncated_normal(Key key, float lower, float upper, const Shape& shape) {
  return detail::traced(
      "truncated_normal", [lower, upper, shape](Key k) { return truncated_normal_draw(k, lower, upper, shape); }, key);
}
Tensor bernoulli(Key key, float p, const Shape& shape) {
  return detail::traced("bernoulli", [p, shape](Key k) { return bernoulli_draw(k, p, shape); }, key);
}
Tensor permutation(Key key, std::int64_t n) {
  return detail::traced("permutation", [n](Key k) { return permutation_draw(k, n); }, key);
}

}  // namespace weft
