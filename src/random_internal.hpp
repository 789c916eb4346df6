#pragma once
// Internal: the pieces of weft's random numbers that fused kernels (dropout) build on, so they can
// draw a mask without materialising the random bits.
//
// The stream random_bits(key, n) of n words follows the key's layout (weft::ThreefryLayout):
//  - partitionable: word i is y0 ^ y1 of threefry(key, {i >> 32, i & 0xffffffff}); any range of
//    words is drawn on its own (partitionable_bits).
//  - classic (JAX's classic threefry_2x32): with half = ceil(n / 2) and counters c[k] = k (c[n] = 0,
//    the padding, when n is odd), pair j in [0, half) is threefry(key, {c[j], c[j + half]}); its
//    first output word is word j of the stream and its second output word is word j + half
//    (dropped for the padded pair of an odd n). Streams of 0xffffffff words or more are drawn in
//    blocks, each under its own key (kBlockWords).
//
// A fused kernel draws word i for element i without storing the stream, e.g. dropout's mask:
//   for_each_bits(key, n, [&](std::int64_t off, const std::uint32_t* bits, std::int64_t count) {
//     for (std::int64_t i = 0; i < count; ++i) y[off + i] = unit_float(bits[i]) < keep ? x[off + i] / keep : 0.0f;
//   });
// (unit_float(bits) < keep is exactly jax.random.bernoulli(key, keep)). Kernels that want the
// classic pairs themselves use random_bits_pairs / threefry_pairs.
#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "parallel.hpp"
#include "weft/random.hpp"

namespace weft::detail {

/// One Threefry round: a += b; b = rotl(b, R) ^ a.
template <int R>
[[gnu::always_inline]] inline void threefry_round(std::uint32_t& a, std::uint32_t& b) noexcept {
  a += b;
  b = std::rotl(b, R) ^ a;
}

/// Four rounds with the rotations of one half of the schedule.
template <int R0, int R1, int R2, int R3>
[[gnu::always_inline]] inline void threefry_four(std::uint32_t& a, std::uint32_t& b) noexcept {
  threefry_round<R0>(a, b);
  threefry_round<R1>(a, b);
  threefry_round<R2>(a, b);
  threefry_round<R3>(a, b);
}

/// Threefry-2x32's 20 rounds on (x0, x1) under the key (k0, k1), key injections after every 4
/// rounds. Inline and written out so that loops over many counters vectorise (each rotation is one
/// vector instruction with AVX-512).
[[gnu::always_inline]] inline void threefry20(std::uint32_t k0, std::uint32_t k1, std::uint32_t& x0,
                                              std::uint32_t& x1) noexcept {
  const std::uint32_t k2 = k0 ^ k1 ^ 0x1BD11BDAu;  // Skein's key-schedule parity
  std::uint32_t a = x0 + k0, b = x1 + k1;
  threefry_four<13, 15, 26, 6>(a, b);
  a += k1;
  b += k2 + 1u;
  threefry_four<17, 29, 16, 24>(a, b);
  a += k2;
  b += k0 + 2u;
  threefry_four<13, 15, 26, 6>(a, b);
  a += k0;
  b += k1 + 3u;
  threefry_four<17, 29, 16, 24>(a, b);
  a += k1;
  b += k2 + 4u;
  threefry_four<13, 15, 26, 6>(a, b);
  a += k2;
  b += k0 + 5u;
  x0 = a;
  x1 = b;
}

/// Partitionable layout: out[k] = y0 ^ y1 of threefry(key, {hi, lo + k}) for k in [0, m), where
/// lo + m <= 2^32 (the caller splits a range where the low counter word would wrap).
/// Vectorised: 16 counters per AVX-512 instruction.
void threefry_xor(Key key, std::uint32_t hi, std::uint32_t lo, std::int64_t m, std::uint32_t* out) noexcept;

/// Words [i0, i1) of the partitionable stream of `key` into out[0, i1 - i0).
inline void partitionable_bits(Key key, std::int64_t i0, std::int64_t i1, std::uint32_t* out) noexcept {
  while (i0 < i1) {
    const auto index = static_cast<std::uint64_t>(i0);
    const auto lo = static_cast<std::uint32_t>(index);
    const std::int64_t run = std::min(i1 - i0, (std::int64_t{1} << 32) - std::int64_t{lo});
    threefry_xor(key, static_cast<std::uint32_t>(index >> 32), lo, run, out);
    out += run;
    i0 += run;
  }
}

/// Classic layout: for j in [j0, j1): (first[j - j0], second[j - j0]) = threefry(key, {j, j + half}) (mod 2^32).
/// The counters are taken literally: for a stream of odd n (half = (n + 1) / 2) the last pair,
/// j = half - 1, has the padded counter 0 instead of n, so a caller either stops at j1 <= n / 2 and
/// draws that pair as threefry2x32(key, {half - 1, 0}), or calls random_bits_pairs, which does.
/// Vectorised: 16 pairs per AVX-512 instruction.
void threefry_pairs(Key key, std::uint32_t half, std::int64_t j0, std::int64_t j1, std::uint32_t* first,
                    std::uint32_t* second) noexcept;

/// The pairs [j0, j1) of the classic stream random_bits(key, n), n < kBlockWords, padding included:
/// word j is first[j - j0]; word j + (n + 1) / 2 is second[j - j0] (for an odd n, the last pair's
/// second word lies past the stream and is to be ignored).
inline void random_bits_pairs(Key key, std::int64_t n, std::int64_t j0, std::int64_t j1, std::uint32_t* first,
                              std::uint32_t* second) noexcept {
  const std::int64_t half = (n + 1) / 2, full = n / 2;
  const std::int64_t literal_end = std::min(j1, full);
  if (j0 < literal_end) threefry_pairs(key, static_cast<std::uint32_t>(half), j0, literal_end, first, second);
  if (j1 > full) {  // j1 == half with n odd: the pair holding the padded counter
    const auto w = threefry2x32(key.words(), {static_cast<std::uint32_t>(full), 0u});
    first[full - j0] = w[0];
    second[full - j0] = w[1];
  }
}

/// In the classic layout JAX draws at most 0xffffffff words from one key: a longer stream is
/// split(key, blocks + 1) and block b is random_bits(subkey b, 0xffffffff), the last one holding the
/// remainder. (The partitionable layout counts to 2^64 under one key.)
inline constexpr std::int64_t kBlockWords = 0xffffffff;
/// Pairs (classic) or words (partitionable) per tile of for_each_bits (two stack arrays of this many
/// words), and at least this many per parallel chunk.
inline constexpr std::int64_t kBitsTile = 512;
inline constexpr std::int64_t kBitsGrain = kParallelGrain / 2;

/// Classic layout: calls f(block_key, offset, length) for the blocks of a stream of n words, in order: one block
/// under `key` when n < block_words, else split(key, n / block_words + 1) gives each block its key.
/// `block_words` is JAX's block length, smaller only in tests.
template <class F>
void for_each_block(Key key, std::int64_t n, std::int64_t block_words, F&& f) {
  if (n <= 0) return;
  const std::int64_t blocks = n / block_words;
  if (blocks == 0) {
    f(key, std::int64_t{0}, n);
    return;
  }
  const std::vector<Key> keys = split(key, static_cast<int>(blocks + 1));
  for (std::int64_t b = 0; b <= blocks; ++b) {
    const std::int64_t base = b * block_words;
    const std::int64_t len = std::min(block_words, n - base);
    if (len > 0) f(keys[static_cast<std::size_t>(b)], base, len);
  }
}

/// Calls sink(offset, bits, count) with the words [offset, offset + count) of random_bits(key, n),
/// each word exactly once, in runs of at most kBitsTile words. Runs in parallel (detail::parallel_for,
/// chunks fixed by n): the sink must only write what its run covers.
template <class Sink>
void for_each_bits(Key key, std::int64_t n, Sink&& sink, std::int64_t block_words = kBlockWords) {
  if (key.layout() == ThreefryLayout::partitionable) {
    parallel_for(n, kBitsGrain, [&](std::int64_t i0, std::int64_t i1) {
      std::array<std::uint32_t, kBitsTile> bits;
      for (std::int64_t i = i0; i < i1; i += kBitsTile) {
        const std::int64_t m = std::min(kBitsTile, i1 - i);
        partitionable_bits(key, i, i + m, bits.data());
        sink(i, bits.data(), m);
      }
    });
    return;
  }
  for_each_block(key, n, block_words, [&](Key k, std::int64_t base, std::int64_t len) {
    const std::int64_t half = (len + 1) / 2;
    parallel_for(half, kBitsGrain, [&](std::int64_t p0, std::int64_t p1) {
      std::array<std::uint32_t, kBitsTile> first, second;
      for (std::int64_t j = p0; j < p1; j += kBitsTile) {
        const std::int64_t m = std::min(kBitsTile, p1 - j);
        random_bits_pairs(k, len, j, j + m, first.data(), second.data());
        sink(base + j, first.data(), m);
        const std::int64_t m2 = std::min(m, len - half - j);  // drops the padded word
        if (m2 > 0) sink(base + half + j, second.data(), m2);
      }
    });
  });
}

/// random_bits(key, out) with JAX's classic block length replaced by `block_words` (for tests; a
/// partitionable key has no blocks).
void random_bits_blocked(Key key, std::span<std::uint32_t> out, std::int64_t block_words);

/// The float in [0, 1) of 23 random mantissa bits: bit_cast<float>((bits >> 9) | 0x3f800000) - 1.
[[gnu::always_inline]] inline float unit_float(std::uint32_t bits) noexcept {
  return std::bit_cast<float>((bits >> 9) | 0x3f800000u) - 1.0f;
}

/// jax.random.uniform's value for `bits` in [lo, hi), with scale = hi - lo (float): max(lo, u * scale + lo).
/// A fused kernel testing `uniform < keep` on [0, 1) can compare unit_float(bits) directly.
[[gnu::always_inline]] inline float uniform_float(std::uint32_t bits, float lo, float scale) noexcept {
  const float v = unit_float(bits) * scale + lo;
  return v < lo ? lo : v;
}

/// erfinv in float32 with XLA's single-precision polynomial (M. Giles, "Approximating the erfinv
/// function", GPU Computing Gems 2011), so normal samples match JAX's to float rounding.
/// erfinv(+-1) is +-FLT_MAX, as XLA gives; NaN outside [-1, 1].
float erfinv(float x) noexcept;

}  // namespace weft::detail
