// gemm-backends: single-precision GEMM throughput of the candidate backends on this machine, one
// thread, row-major C = A B. It is how weft's backend was chosen (bench/README.md); each backend is
// compiled in only when its package is installed. OpenBLAS runs on whatever kernels it selects:
// run it once as installed and once with OPENBLAS_CORETYPE=SkylakeX to see both.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#ifdef WEFT_BENCH_OPENBLAS
#include <cblas.h>
extern "C" char* openblas_get_corename();
extern "C" void openblas_set_num_threads(int);
#endif
#ifdef WEFT_BENCH_LIBXSMM
#include <libxsmm.h>
#endif
#ifdef WEFT_BENCH_EIGEN
#include <Eigen/Core>
#endif
#include "../src/backend/row_product.hpp"

namespace {

using Gemm = std::function<void(int m, int n, int k, const float* a, const float* b, float* c)>;

/// GFLOP/s of the best of several timed batches (each at least 50 ms after a warm-up).
double gflops(const Gemm& gemm, int m, int n, int k) {
  std::vector<float> a(static_cast<std::size_t>(m) * k, 0.5f), b(static_cast<std::size_t>(k) * n, 0.25f),
      c(static_cast<std::size_t>(m) * n);
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) gemm(m, n, k, a.data(), b.data(), c.data());
  double best = 1e30;
  for (int trial = 0; trial < 5; ++trial) {
    long reps = 0;
    const auto t0 = clock::now();
    double elapsed = 0;
    while (elapsed < 0.05) {
      gemm(m, n, k, a.data(), b.data(), c.data());
      ++reps;
      elapsed = std::chrono::duration<double>(clock::now() - t0).count();
    }
    best = std::min(best, elapsed / static_cast<double>(reps));
  }
  return 2.0 * m * n * k / best / 1e9;
}

}  // namespace

int main() {
  omp_set_num_threads(1);
  std::vector<std::pair<std::string, Gemm>> backends;
  backends.emplace_back("oneDNN dnnl_sgemm", [](int m, int n, int k, const float* a, const float* b, float* c) {
    dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
  });
#ifdef WEFT_BENCH_OPENBLAS
  openblas_set_num_threads(1);
  backends.emplace_back(std::string("OpenBLAS (") + openblas_get_corename() + " kernels)",
                        [](int m, int n, int k, const float* a, const float* b, float* c) {
                          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
                        });
#endif
#ifdef WEFT_BENCH_LIBXSMM
  libxsmm_init();
  backends.emplace_back("libxsmm", [](int m, int n, int k, const float* a, const float* b, float* c) {
    // libxsmm is column-major: C^T = B^T A^T.
    const float alpha = 1.0f, beta = 0.0f;
    const char t = 'N';
    libxsmm_sgemm(&t, &t, &n, &m, &k, &alpha, b, &n, a, &k, &beta, c, &n);
  });
#endif
#ifdef WEFT_BENCH_EIGEN
  backends.emplace_back("Eigen", [](int m, int n, int k, const float* a, const float* b, float* c) {
    using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const Mat> A(a, m, k), B(b, k, n);
    Eigen::Map<Mat> C(c, m, n);
    C.noalias() = A * B;
  });
#endif
  // weft's own kernel for a single row, which sgemm uses instead of oneDNN for m = 1.
  if (weft::backend::kHasRowProduct)
    backends.emplace_back("weft row kernel (M = 1 only)", [](int, int n, int k, const float* a, const float* b, float* c) {
      weft::backend::row_product(n, k, a, b, n, c);
    });
  const int shapes[][3] = {{1024, 1024, 1024}, {256, 1024, 1024}, {256, 256, 256}, {128, 256, 256},
                           {32, 128, 128},     {1, 64, 128},       {1, 128, 128},
                           {1, 128, 10}};
  std::printf("GFLOP/s, one thread, float32, row-major C[M,N] = A[M,K] B[K,N]\n%-34s", "backend \\ M,K,N");
  for (const auto& s : shapes) std::printf(" %14s", (std::to_string(s[0]) + "," + std::to_string(s[1]) + "," + std::to_string(s[2])).c_str());
  std::printf("\n");
  for (const auto& [name, gemm] : backends) {
    std::printf("%-34s", name.c_str());
    for (const auto& s : shapes)
      if (name.starts_with("weft row") && s[0] != 1)
        std::printf(" %14s", "-");
      else
        std::printf(" %14.1f", gflops(gemm, s[0], s[2], s[1]));
    std::printf("\n");
    std::fflush(stdout);
  }
}
