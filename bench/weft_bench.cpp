// weft-bench: weft's workloads, one line each per thread count (see bench/README.md).
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdio>
#include <vector>

#include "harness.hpp"
#include "weft/weft.hpp"

namespace {

using namespace weft;

std::vector<bench::Workload> workloads() {
  std::vector<bench::Workload> w;

  // Framework cost of one op: add of two 1-element tensors (allocation, broadcasting plan, dispatch).
  w.push_back({"op_overhead",
               [] {
                 auto a = std::make_shared<Tensor>(Tensor({1.0f}, Shape{1}));
                 auto b = std::make_shared<Tensor>(Tensor({2.0f}, Shape{1}));
                 return [a, b] {
                   Tensor c = *a + *b;
                   asm volatile("" : : "r"(&c) : "memory");
                 };
               },
               1000, [](double ms) { return "ns_per_op=" + bench::fmt_ms(ms * 1e6); }});

  constexpr std::int64_t n = 1024;
  const auto gflops = [](double ms) { return "gflops=" + bench::fmt_ms(2.0 * n * n * n / (ms * 1e-3) / 1e9); };
  // 1024^3 matmul through weft's op (allocation of the result included)...
  w.push_back({"gemm_1024",
               [] {
                 auto a = std::make_shared<Tensor>(uniform(Key(1), Shape{n, n}));
                 auto b = std::make_shared<Tensor>(uniform(Key(2), Shape{n, n}));
                 return [a, b] {
                   Tensor c = matmul(*a, *b);
                   asm volatile("" : : "r"(&c) : "memory");
                 };
               },
               1, gflops});
  // ...and the backend called directly into a preallocated result, for the overhead of the op.
  w.push_back({"gemm_1024_backend_direct",
               [] {
                 auto a = std::make_shared<std::vector<float>>(uniform(Key(1), Shape{n, n}).to_vector());
                 auto b = std::make_shared<std::vector<float>>(uniform(Key(2), Shape{n, n}).to_vector());
                 auto c = std::make_shared<std::vector<float>>(static_cast<std::size_t>(n * n));
                 return [a, b, c] {
                   dnnl_sgemm('N', 'N', n, n, n, 1.0f, a->data(), n, b->data(), n, 0.0f, c->data(), n);
                 };
               },
               1, gflops});
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options o;
  if (!bench::parse(argc, argv, o, "weft-bench")) return 0;
  const auto all = workloads();
  for (int t : o.threads) {
    omp_set_num_threads(t);
    for (const auto& w : all)
      if (bench::selected(o, w.name)) bench::run("weft", t, w, o.seconds);
  }
}
