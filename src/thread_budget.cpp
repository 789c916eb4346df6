#include "thread_budget.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>

namespace weft::detail {

namespace {

using Nanoseconds = std::int64_t;

Nanoseconds steady_now() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// CPU time all processors spent busy since boot: user, nice, system, irq and softirq of the
/// aggregate line of /proc/stat (idle, iowait and the hypervisor's steal are not work that weft
/// competes with).
std::optional<Nanoseconds> system_busy() noexcept {
  std::FILE* f = std::fopen("/proc/stat", "re");
  if (!f) return std::nullopt;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  const int fields = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait,
                                 &irq, &softirq);
  std::fclose(f);
  const long ticks_per_s = sysconf(_SC_CLK_TCK);
  if (fields != 7 || ticks_per_s <= 0) return std::nullopt;
  const auto ticks = static_cast<long double>(user + nice + system + irq + softirq);
  return static_cast<Nanoseconds>(ticks * 1e9L / static_cast<long double>(ticks_per_s));
}

Nanoseconds own_cpu() noexcept {
  timespec ts{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<Nanoseconds>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// The cores that other processes leave idle (all online processors less the CPU time the whole
/// machine spent busy outside this process, per second of the last window), refreshed once per
/// window by whichever thread finds the window over (the others carry on with the last figure).
class ThreadBudget {
 public:
  int threads(int max_threads) noexcept {
    if (max_threads <= 1 || !enabled_.load(std::memory_order_relaxed)) return std::max(1, max_threads);
    const Nanoseconds now = steady_now();
    if (now >= next_sample_.load(std::memory_order_relaxed)) sample(now);
    return std::clamp(idle_cores_.load(std::memory_order_relaxed), 1, max_threads);
  }

 private:
  struct Sample {
    Nanoseconds wall, system_busy, own;
  };

  void sample(Nanoseconds now) noexcept {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || now < next_sample_.load(std::memory_order_relaxed)) return;
    next_sample_.store(now + kBudgetWindowMs * 1'000'000, std::memory_order_relaxed);
    const std::optional<Nanoseconds> busy = system_busy();
    if (!busy) {
      enabled_.store(false, std::memory_order_relaxed);
      return;
    }
    const Sample current{now, *busy, own_cpu()};
    if (last_) {
      const auto wall = static_cast<double>(current.wall - last_->wall);
      const auto others = static_cast<double>((current.system_busy - last_->system_busy) - (current.own - last_->own));
      const double busy_elsewhere = wall > 0 ? others / wall : 0.0;
      idle_cores_.store(static_cast<int>(std::clamp(std::lround(online_ - busy_elsewhere), 1L, 1L << 16)),
                        std::memory_order_relaxed);
    }
    last_ = current;
  }

  const double online_ = static_cast<double>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  std::atomic<bool> enabled_{true};
  std::atomic<Nanoseconds> next_sample_{0};
  std::atomic<int> idle_cores_{1 << 16};  // until the first window is over: no limit
  std::mutex mutex_;
  std::optional<Sample> last_;  // guarded by mutex_
};

}  // namespace

int region_threads(int max_threads) noexcept {
  // One budget per process, as the thread pool it sizes is one per process (OpenMP's). It never
  // changes a result, only how many threads compute it.
  static ThreadBudget budget;
  return budget.threads(max_threads);
}

}  // namespace weft::detail
