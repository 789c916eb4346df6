// The thread budget of weft's parallel regions (src/thread_budget.hpp).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "../src/thread_budget.hpp"
#include "testing.hpp"

using weft::detail::kBudgetWindowMs;
using weft::detail::region_threads;

TEST_CASE("thread budget: never more than the maximum, never fewer than one") {
  CHECK(region_threads(1) == 1);
  CHECK(region_threads(0) == 1);
  for (const int max : {2, 3, 64}) {
    const int t = region_threads(max);
    CHECK(t >= 1);
    CHECK(t <= max);
  }
}

TEST_CASE("thread budget: a region steps aside for a busy process") {
  const auto online = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  if (online < 2) return;  // nothing to give up on one processor
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0)
    for (;;) asm volatile("" ::: "memory");  // busy until killed
  // One window to start from once the child runs, one full window of it busy.
  const auto window = std::chrono::milliseconds(kBudgetWindowMs + 50);
  std::this_thread::sleep_for(window);
  (void)region_threads(online);
  std::this_thread::sleep_for(window);
  const int threads = region_threads(online);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  INFO("online processors: " << online << ", threads given: " << threads);
  CHECK(threads >= 1);
  CHECK(threads <= online - 1);  // the child kept one core busy (others on a shared machine only add to it)
}
