#pragma once
// A tiny benchmark harness shared by weft-bench and the libtorch peer, so both print the same lines:
//   <impl> threads=<t> <workload> median_ms=<x> min_ms=<x> max_ms=<x> reps=<n>[ extra]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

struct Workload {
  std::string name;
  /// Prepares the workload for the current thread count and returns one step to time.
  std::function<std::function<void()>()> setup;
  /// Steps timed together in one repetition (tiny ops are timed in batches).
  int batch = 1;
  /// Optional extra figure appended to the line, from the median milliseconds per step.
  std::function<std::string(double median_ms)> extra{};
  /// Milliseconds that setup measured apart and that count in every repetition (a floor's memory
  /// pass, timed alone so that it does not evict what the products keep in cache).
  std::shared_ptr<double> added_ms = std::make_shared<double>(0.0);
};

struct Options {
  std::vector<int> threads{1};
  std::vector<std::string> only;
  double seconds = 2.0;
};

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

/// Parses --threads 1,2 --only a,b --time SECONDS; returns false (after printing usage) on bad input.
inline bool parse(int argc, char** argv, Options& o, const char* program) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--threads") {
        o.threads.clear();
        for (const auto& t : split_list(value())) o.threads.push_back(std::stoi(t));
      } else if (a == "--only") {
        o.only = split_list(value());
      } else if (a == "--time") {
        o.seconds = std::stod(value());
      } else if (a == "--help" || a == "-h") {
        std::printf("usage: %s [--threads 1,2] [--only name1,name2] [--time SECONDS]\n", program);
        return false;
      } else {
        throw std::runtime_error("unknown option " + a);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s (see --help)\n", program, e.what());
      std::exit(2);
    }
  }
  return true;
}

/// Milliseconds in plain decimal notation with at least 4 significant digits (never scientific).
inline std::string fmt_ms(double v) {
  int decimals = 3;
  if (v > 0 && v < 1) decimals = std::min(12, 3 - static_cast<int>(std::floor(std::log10(v))));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// Times `w` for about `seconds` after a warm-up and prints its line.
inline void run(const char* impl, int threads, const Workload& w, double seconds) {
  using clock = std::chrono::steady_clock;
  const auto step = w.setup();
  auto time_one = [&] {
    const auto t0 = clock::now();
    for (int i = 0; i < w.batch; ++i) step();
    return std::chrono::duration<double, std::milli>(clock::now() - t0).count() / w.batch + *w.added_ms;
  };
  // Warm-up: a tenth of the budget, at least 3 repetitions.
  const auto warm_end = clock::now() + std::chrono::duration<double>(seconds / 10);
  for (int i = 0; i < 3 || clock::now() < warm_end; ++i) time_one();
  std::vector<double> ms;
  const auto end = clock::now() + std::chrono::duration<double>(seconds);
  while (ms.size() < 5 || clock::now() < end) ms.push_back(time_one());
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  // Not `" " + extra(...)`: g++ 12 at -O3 warns falsely (-Wrestrict) on that inlined concatenation.
  const std::string extra = w.extra ? w.extra(median) : std::string();
  std::printf("%s threads=%d %s median_ms=%s min_ms=%s max_ms=%s reps=%zu%s%s\n", impl, threads, w.name.c_str(),
              fmt_ms(median).c_str(), fmt_ms(ms.front()).c_str(), fmt_ms(ms.back()).c_str(),
              ms.size() * static_cast<std::size_t>(w.batch), extra.empty() ? "" : " ", extra.c_str());
  std::fflush(stdout);
}

inline bool selected(const Options& o, const std::string& name) {
  return o.only.empty() || std::find(o.only.begin(), o.only.end(), name) != o.only.end();
}

}  // namespace bench
