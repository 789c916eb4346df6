#pragma once
// Internal: weft's own parallel loops (OpenMP, the runtime oneDNN also uses, so there is one pool).
//
// Work is split into chunks whose boundaries depend only on the problem size,
// never on the number of threads, so results are bit-identical on any
// thread count (a reduction sums each chunk in order, then the chunks in order).
#include <algorithm>
#include <cstdint>

#include <omp.h>

#include "thread_budget.hpp"

namespace weft::detail {

/// Below this many elements of simple work a parallel region costs more than it saves.
inline constexpr std::int64_t kParallelGrain = 32768;

/// Calls f(begin, end) over [0, n) in chunks of at least `grain`, in parallel when worthwhile.
template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
  if (n <= 0) return;
  const std::int64_t chunks = std::max<std::int64_t>(1, n / std::max<std::int64_t>(grain, 1));
  const int threads = chunks == 1 || omp_in_parallel() ? 1 : region_threads(omp_get_max_threads());
  if (threads == 1) {
    f(std::int64_t{0}, n);
    return;
  }
  const std::int64_t chunk = (n + chunks - 1) / chunks;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * chunk;
    const std::int64_t end = std::min(n, begin + chunk);
    if (begin < end) f(begin, end);
  }
}

}  // namespace weft::detail
