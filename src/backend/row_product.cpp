#include "row_product.hpp"

#include <utility>

namespace weft::backend {

namespace {

/// y[0, width) = x W[:, 0:width): `width` sums in registers (the loop fully unrolled), one pass
/// over the rows of W. A narrow block (16 columns or fewer: one vector) keeps four partial sums
/// per column over rows p mod 4, added at the end: with one, each row's multiply-add waited for
/// the last one's, and 1x128x16 took 105 ns instead of 57.
template <int width>
void columns(std::int64_t k, const float* x, const float* w, std::int64_t ldw, float* y) {
  constexpr int partial = width > 16 ? 1 : 4;
  float sums[partial][width] = {};
  std::int64_t p = 0;
  for (; p + partial <= k; p += partial, w += partial * ldw)
#pragma GCC unroll 4
    for (int s = 0; s < partial; ++s) {
      const float xp = x[p + s];
#pragma GCC unroll 128
      for (int j = 0; j < width; ++j) sums[s][j] += xp * w[s * ldw + j];
    }
  for (; p < k; ++p, w += ldw) {
    const float xp = x[p];
#pragma GCC unroll 128
    for (int j = 0; j < width; ++j) sums[0][j] += xp * w[j];
  }
#pragma GCC unroll 128
  for (int j = 0; j < width; ++j) {
    float sum = sums[0][j];
    for (int s = 1; s < partial; ++s) sum += sums[s][j];
    y[j] = sum;
  }
}

/// The last 1..15 columns, each width compiled on its own: a loop over a width known only at
/// run time kept its sums in memory and took 2.5 times as long (1x128x10).
template <int... widths>
void narrow(std::int64_t width, std::int64_t k, const float* x, const float* w, std::int64_t ldw, float* y,
            std::integer_sequence<int, widths...>) {
  using Columns = void (*)(std::int64_t, const float*, const float*, std::int64_t, float*);
  static constexpr Columns by_width[] = {columns<widths + 1>...};
  by_width[width - 1](k, x, w, ldw, y);
}

}  // namespace

void row_product(std::int64_t n, std::int64_t k, const float* x, const float* w, std::int64_t ldw, float* y) {
  std::int64_t j = 0;
  for (; j + 128 <= n; j += 128) columns<128>(k, x, w + j, ldw, y + j);
  for (; j + 16 <= n; j += 16) columns<16>(k, x, w + j, ldw, y + j);
  if (j < n) narrow(n - j, k, x, w + j, ldw, y + j, std::make_integer_sequence<int, 15>{});
}

}  // namespace weft::backend
