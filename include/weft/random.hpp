#pragma once
// Counter-based random numbers with JAX's classic threefry layout: the same key
// gives the same bits as JAX's default PRNG (jax_threefry_partitionable off),
// so weft's random streams are bit-identical with JAX's.
#include <array>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <vector>

#include "weft/tensor.hpp"

namespace weft {

/// Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
[[nodiscard]] std::array<std::uint32_t, 2> threefry2x32(std::array<std::uint32_t, 2> key,
                                                        std::array<std::uint32_t, 2> counter) noexcept;

/// A random key: two 32-bit words, as jax.random.PRNGKey.
class Key {
 public:
  /// The words {seed >> 32, seed & 0xffffffff}.
  explicit Key(std::uint64_t seed) noexcept
      : words_{static_cast<std::uint32_t>(seed >> 32), static_cast<std::uint32_t>(seed & 0xffffffffu)} {}
  [[nodiscard]] static Key from_words(std::array<std::uint32_t, 2> words) noexcept {
    Key k(0);
    k.words_ = words;
    return k;
  }
  [[nodiscard]] std::array<std::uint32_t, 2> words() const noexcept { return words_; }
  friend bool operator==(const Key&, const Key&) = default;

 private:
  std::array<std::uint32_t, 2> words_;
};

std::ostream& operator<<(std::ostream& os, const Key& key);

/// `n` new keys: threefry over the counters 0..2n-1 taken as the pairs (i, n+i); all first output
/// words, then all second output words, cut into n keys of two consecutive words.
[[nodiscard]] std::vector<Key> split(Key key, int n = 2);
/// A key for `data`: threefry(key, {0, data}).
[[nodiscard]] Key fold_in(Key key, std::uint32_t data) noexcept;

/// Fills `out` with random 32-bit words: counters 0..n-1 (a 0 appended when n is odd) split into
/// halves paired element-wise, outputs concatenated and cut back to n. Vectorised and threaded; the
/// words do not depend on the thread count.
void random_bits(Key key, std::span<std::uint32_t> out);
[[nodiscard]] std::vector<std::uint32_t> random_bits(Key key, std::int64_t n);

/// Uniform float32 in [lo, hi): bit_cast<float>((bits >> 9) | 0x3f800000) - 1, scaled.
[[nodiscard]] Tensor uniform(Key key, const Shape& shape, float lo = 0.0f, float hi = 1.0f);
/// Standard normal float32: sqrt(2) * erfinv(u), u uniform in (nextafter(-1, 0), 1).
[[nodiscard]] Tensor normal(Key key, const Shape& shape);
/// Normal truncated to (lower, upper): sqrt(2) * erfinv(u), u uniform in
/// [erf(lower / sqrt 2), erf(upper / sqrt 2)), clipped into the open interval.
[[nodiscard]] Tensor truncated_normal(Key key, float lower, float upper, const Shape& shape);
/// int32 mask of uniform(key, shape) < p.
[[nodiscard]] Tensor bernoulli(Key key, float p, const Shape& shape);
/// A random permutation of 0..n-1 as int32, shuffled as jax.random.permutation does.
[[nodiscard]] Tensor permutation(Key key, std::int64_t n);

}  // namespace weft
