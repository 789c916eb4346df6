#pragma once
// Internal: branch-free scalar kernels that the row loops of the softmax family and the
// cross-entropy losses share (so that their loops vectorise and their sums are deterministic).
#include <bit>
#include <cstdint>

namespace weft::detail {

inline constexpr std::int64_t kLanes = 16;  // independent partial sums: one AVX-512 register

/// exp(x) for x <= 0 or NaN (every exponent in the softmax family is x - max(x) <= 0, or a
/// log-probability), branch-free so that the loops calling it vectorise. glibc's vector expf (libmvec) is only used
/// by the compiler under -ffast-math, which would break the NaN and -inf handling softmax needs,
/// and with a scalar std::exp the kernels ran about five times slower on large rows.
/// Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-7 polynomial, then scaled
/// by 2^n through the exponent bits; relative error about 1e-7. Results below exp(-87) (under
/// 1.7e-38, negligible next to a softmax denominator >= 1) are flushed to 0, and -inf gives 0.
inline float exp_nonpositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;   // ln 2 split so that n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;    // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x < -87.0f ? -87.0f : x;
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = (p * (r * r) + r) + 1.0f;
  // n + 127 is in [1, 127] here: a normal power of two.
  const std::uint32_t exponent = (std::bit_cast<std::uint32_t>(t) - std::bit_cast<std::uint32_t>(kRound) + 127u) << 23;
  const float y = e * std::bit_cast<float>(exponent);
  return x < -87.0f ? 0.0f : (x != x ? x : y);
}

/// The larger of a and b; NaN wins, so a row holding NaN gives NaN throughout (as JAX).
inline float max_nan(float a, float b) {
  const bool keep_a = (a > b) | (a != a);  // bitwise: no branch, so the lane loops vectorise
  return keep_a ? a : b;
}

/// Combines kLanes partial sums in a fixed order.
inline float lanes_sum(float* acc) {
  for (std::int64_t w = kLanes / 2; w > 0; w /= 2)
    for (std::int64_t j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

/// sum_i f(i) over [0, n) in kLanes partial sums (f may also write an output element).
template <class F>
inline float lanes_accumulate(std::int64_t n, F f) {
  if (n < kLanes) {  // a short row (a few classes): in order, without the lane set-up
    float s = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) s += f(i);
    return s;
  }
  float acc[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
#pragma omp simd  // the lanes are independent; keeps them vector code even when f holds selects
    for (std::int64_t j = 0; j < kLanes; ++j) acc[j] += f(i + j);
  for (std::int64_t j = 0; i < n; ++i, ++j) acc[j] += f(i);
  return lanes_sum(acc);
}

}  // namespace weft::detail
