#pragma once
// Internal: the one interface between weft and its GEMM backend.
//
// Row-major single-precision C = op(A) op(B) + beta * C, where op transposes
// when asked. The backend is oneDNN's dnnl_sgemm, chosen by measurement
// (bench/README.md): it detects AVX-512 by itself and is at or near the top
// for every shape weft's workloads use, except a single row (m = 1), which row_product.hpp
// computes without oneDNN's per-call set-up.
#include <cstdint>

namespace weft::backend {

void sgemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
           std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);

/// The backend's name, for benchmarks and diagnostics.
const char* gemm_backend_name() noexcept;

}  // namespace weft::backend
