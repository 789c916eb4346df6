#include <string>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "../thread_budget.hpp"
#include "gemm.hpp"
#include "row_product.hpp"
#include "weft/error.hpp"

namespace weft::backend {

namespace {
// Below this many multiply-adds, opening a parallel region costs more than it saves, so the call
// runs on one thread. Measured with dnnl_sgemm here (bench/README.md): 32x64x128 takes 2.7 us on one
// thread and 5.0 on two; two threads win from about 1M multiply-adds (128^3: 18.7 vs 13.7 us).
constexpr std::int64_t kSingleThreadMacs = 1536 * 1024;
}  // namespace

void sgemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
           std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (kHasRowProduct && m == 1 && !transpose_a && !transpose_b && beta == 0.0f) {
    row_product(n, k, a, b, ldb, c);
    return;
  }
  // oneDNN sizes its parallel region by omp_get_max_threads(): one thread for a small product,
  // else as many as the thread budget gives (src/thread_budget.hpp).
  const int threads = omp_get_max_threads();
  const bool adjust = threads > 1 && !omp_in_parallel();
  const int use = !adjust ? threads : m * n * k < kSingleThreadMacs ? 1 : detail::region_threads(threads);
  if (use != threads) omp_set_num_threads(use);
  const dnnl_status_t status =
      dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (use != threads) omp_set_num_threads(threads);
  if (status != dnnl_success)
    throw Error(fmt::format("weft::matmul: the GEMM backend (oneDNN dnnl_sgemm) failed with status {} for m={} n={} "
                            "k={}",
                            static_cast<int>(status), m, n, k));
}

const char* gemm_backend_name() noexcept { return "oneDNN dnnl_sgemm"; }

}  // namespace weft::backend
