#pragma once
// Internal: the product of one row and a matrix, y = x W (x of k elements, W row-major k x n with
// row stride ldw), for sgemm's m = 1 (a batch of one). oneDNN's dnnl_sgemm spends more time
// choosing and setting up its kernel than a row takes (gemm-backends, bench/README.md: 7 GFLOP/s
// for 1x128x10 through it, 27 here), and the row's product is bound by reading W, which a loop
// with its sums in registers does at the cache's speed.
#include <cstdint>

namespace weft::backend {

/// Whether this build has the row kernel: with AVX2 or later, where its sums fit in registers.
/// Without it (the baseline x86-64 build) the loop spills and oneDNN is faster, so sgemm keeps it.
inline constexpr bool kHasRowProduct =
#if defined(__AVX2__)
    true;
#else
    false;
#endif

void row_product(std::int64_t n, std::int64_t k, const float* x, const float* w, std::int64_t ldw, float* y);

}  // namespace weft::backend
