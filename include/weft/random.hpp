#pragma once
// Counter-based random numbers, bit-identical with JAX's threefry PRNG. A key carries its layout:
// ThreefryLayout::partitionable (the default) draws what JAX draws with its default setting since
// JAX 0.5, jax_threefry_partitionable=True; ThreefryLayout::classic draws what JAX draws with
// jax_threefry_partitionable=False (JAX before 0.5).
#include <array>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <vector>

#include "weft/tensor.hpp"

namespace weft {

/// Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
[[nodiscard]] std::array<std::uint32_t, 2> threefry2x32(std::array<std::uint32_t, 2> key,
                                                        std::array<std::uint32_t, 2> counter);

/// How a key's counters are laid out when it splits and draws, as JAX's two threefry
/// implementations do (the key words and fold_in are the same in both).
///  - partitionable (JAX's jax_threefry_partitionable=True, the default since JAX 0.5):
///    split(key, n)[i] = threefry(key, (0, i)); word i of a draw is y0 ^ y1 of
///    threefry(key, (i >> 32, i & 0xffffffff)), i the row-major index.
///  - classic (jax_threefry_partitionable=False): the counters 0..n-1 of a draw are cut in halves
///    paired element-wise, and split draws its keys' words as one such stream.
enum class ThreefryLayout { partitionable, classic };

/// A random key: two 32-bit words, as jax.random.key, and the layout its draws follow (as JAX's
/// typed keys carry their implementation). Every key derived from it (split, fold_in, Flax's
/// per-path make_rng) keeps the layout; keys of different layouts never compare equal.
class Key {
 public:
  /// The words {seed >> 32, seed & 0xffffffff}.
  explicit Key(std::uint64_t seed, ThreefryLayout layout = ThreefryLayout::partitionable) noexcept
      : words_{static_cast<std::uint32_t>(seed >> 32), static_cast<std::uint32_t>(seed & 0xffffffffu)},
        layout_(layout) {}
  [[nodiscard]] static Key from_words(std::array<std::uint32_t, 2> words,
                                      ThreefryLayout layout = ThreefryLayout::partitionable) noexcept {
    Key k(0, layout);
    k.words_ = words;
    return k;
  }
  [[nodiscard]] std::array<std::uint32_t, 2> words() const noexcept { return words_; }
  [[nodiscard]] ThreefryLayout layout() const noexcept { return layout_; }
  friend bool operator==(const Key&, const Key&) = default;

 private:
  std::array<std::uint32_t, 2> words_;
  ThreefryLayout layout_;
};

/// "partitionable" or "classic".
std::ostream& operator<<(std::ostream& os, ThreefryLayout layout);
/// Key([w0, w1]) for a partitionable key, Key([w0, w1], classic) for a classic one.
std::ostream& operator<<(std::ostream& os, const Key& key);

/// `n` new keys of key's layout. Partitionable: key i is threefry(key, (0, i)). Classic: threefry
/// over the counters 0..2n-1 taken as the pairs (i, n+i); all first output words, then all second
/// output words, cut into n keys of two consecutive words.
[[nodiscard]] std::vector<Key> split(Key key, int n = 2);
/// A key for `data`: threefry(key, {0, data}), in either layout.
[[nodiscard]] Key fold_in(Key key, std::uint32_t data);

/// Fills `out` with random 32-bit words in key's layout. Partitionable: word i is y0 ^ y1 of
/// threefry(key, (i >> 32, i & 0xffffffff)). Classic: counters 0..n-1 (a 0 appended when n is odd)
/// split into halves paired element-wise, outputs concatenated and cut back to n. Vectorised and
/// threaded; the words do not depend on the thread count. (JAX's 64-bit draws, y0 << 32 | y1 in
/// the partitionable layout, have no use in weft, whose dtypes are 32-bit.)
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
