#pragma once
// Internal: how many threads one of weft's parallel regions (its own loops and the GEMMs it hands
// to oneDNN) uses.
//
// Every region splits its work into chunks fixed by the problem size, so results do not depend on
// the thread count; only the time does. On a machine shared with other busy processes, OpenMP's
// threads (which spin between regions, then wait at each region's end for a thread the kernel has
// descheduled) make two threads slower than one. So a region uses the OpenMP maximum (the user's
// omp_set_num_threads, weft-train's --threads) less the cores that other processes kept busy
// during the last sampling window (at most the cores they left idle), and the full count again
// once they go idle.
namespace weft::detail {

/// At most `max_threads`, at least 1: the online processors less the cores other processes used
/// lately (rounded), sampled from /proc/stat and this process's CPU time every kBudgetWindowMs.
/// Where /proc/stat cannot be read it is `max_threads`. Thread-safe; costs a clock read between
/// samples.
[[nodiscard]] int region_threads(int max_threads) noexcept;

/// The sampling window: long enough that the kernel's tick accounting (10 ms) averages out, short
/// enough that a competing process costs a quarter of a second before weft steps aside.
inline constexpr long kBudgetWindowMs = 250;

}  // namespace weft::detail
