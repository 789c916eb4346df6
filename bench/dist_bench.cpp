// dist-bench: the time weft::dist::psum takes on a tree shaped like the residual model's
// gradients, against the bytes it moves and the memory copy bandwidth measured in the same run.
//
//   mpirun -np 2 build/bench/dist-bench [--reps N]
//
// Each repetition starts with a barrier, so that every rank enters the reduction together; rank 0
// prints the median. A reduce-scatter plus all-gather sends and receives 2 (n - 1) / n of the tree's
// bytes on each rank ("bus" bytes, as NCCL counts them); on one machine each of those bytes is
// copied once between processes, so the copy of that many bytes is the reduction's floor. The peer
// is MPI's own MPI_Allreduce on the same floats in one flat buffer (which weft does not use: MPI
// promises neither the same result on every rank nor from run to run).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "weft/dist.hpp"
#include "weft/ops.hpp"

using namespace weft;

namespace {

/// The residual model's parameter shapes: dense 784 -> 256, ten blocks of two dense 256 -> 256,
/// dense 256 -> 10, each with a bias.
Variables residual_gradients() {
  std::vector<std::pair<std::string, Tensor>> leaves;
  auto dense = [&](const std::string& name, std::int64_t in, std::int64_t out) {
    leaves.emplace_back("params/" + name + "/kernel", full(Shape{in, out}, 0.001f));
    leaves.emplace_back("params/" + name + "/bias", full(Shape{out}, 0.002f));
  };
  dense("Dense_0", 784, 256);
  for (int b = 0; b < 10; ++b) {
    dense("ResidualBlock_" + std::to_string(b) + "/Dense_0", 256, 256);
    dense("ResidualBlock_" + std::to_string(b) + "/Dense_1", 256, 256);
  }
  dense("Dense_1", 256, 10);
  return Variables::from_leaves(std::move(leaves));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  dist::Session mpi(argc, argv);
  int reps = 50;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--reps") reps = std::max(5, std::stoi(argv[i + 1]));
  using clock = std::chrono::steady_clock;
  const Variables grads = residual_gradients();
  const double bytes = static_cast<double>(grads.num_elements()) * sizeof(float);
  const double bus_bytes = bytes * 2.0 * (mpi.size() - 1) / mpi.size();

  std::vector<double> ms;
  for (int r = 0; r < reps + 3; ++r) {  // three warm-up repetitions
    dist::barrier();
    const auto t0 = clock::now();
    const Variables sum = dist::psum(grads);
    const double t = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (r >= 3) ms.push_back(t);
    if (sum.size() != grads.size()) return 1;
  }
  std::vector<float> flat(static_cast<std::size_t>(grads.num_elements()), 0.001f);
  std::vector<double> mpi_ms;
  for (int r = 0; r < reps + 3; ++r) {
    dist::barrier();
    const auto t0 = clock::now();
    MPI_Allreduce(MPI_IN_PLACE, flat.data(), static_cast<int>(flat.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const double t = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (r >= 3) mpi_ms.push_back(t);
  }
  // The floor: copying the bus bytes once, in this process (memcpy of a buffer that size).
  std::vector<char> src(static_cast<std::size_t>(std::max(bus_bytes, 1.0)), 1), dst(src.size());
  std::vector<double> copy_ms;
  for (int r = 0; r < reps + 3; ++r) {
    const auto t0 = clock::now();
    std::memcpy(dst.data(), src.data(), src.size());
    const double t = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (r >= 3) copy_ms.push_back(t);
    src[static_cast<std::size_t>(r) % src.size()] = static_cast<char>(dst[0] + 1);  // keeps the copy live
  }
  const double m = median(ms), c = median(copy_ms), p = median(mpi_ms);
  if (mpi.rank() == 0) {
    std::printf("mpi ranks=%d allreduce_residual_grads median_ms=%.3f bytes=%.0f bus_gb_s=%.2f\n", mpi.size(), p, bytes,
                bus_bytes / (p * 1e6));
    std::printf(
        "weft-dist ranks=%d allreduce_residual_grads median_ms=%.3f bytes=%.0f bus_bytes=%.0f bus_gb_s=%.2f "
        "copy_floor_ms=%.3f copy_gb_s=%.2f ratio_to_floor=%.2f ratio_to_mpi=%.2f\n",
        mpi.size(), m, bytes, bus_bytes, bus_bytes / (m * 1e6), c, bus_bytes / (c * 1e6), c > 0 ? m / c : 0.0,
        p > 0 ? m / p : 0.0);
  }
  return 0;
}
