#pragma once
// weft::training::ProgressBar: one line of progress for a pass over the data, with the speed in
// examples per second and the time left:
//
//   epoch 3/10 [#########.....................] 140/468 loss 0.4312 19630 examples/s ETA 0:02
//
// On a terminal the line is redrawn in place after every step; into a file or a pipe (a log, CI)
// it is written only when a tenth of the pass is done, one line each, so that a log holds ten
// lines a pass instead of one per step.
//
//   training::ProgressBar bar("epoch 3/10", steps_per_epoch, batch_size);   // on stderr
//   for (...) bar.update(done, {{"loss", mean_loss}});
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

#include "weft/training/scalars.hpp"

namespace weft::training {

class ProgressBar {
 public:
  /// A bar for `total_steps` steps of `examples_per_step` examples each, titled `title`, written to
  /// `out` (redrawn in place when `out` is a terminal). The clock starts here. total_steps or
  /// examples_per_step below 1 is a weft::ValueError.
  ProgressBar(std::string title, std::int64_t total_steps, std::int64_t examples_per_step, std::FILE* out = stderr);
  /// The same on a stream; `terminal` says whether to redraw in place (a carriage return) or print tenths.
  ProgressBar(std::string title, std::int64_t total_steps, std::int64_t examples_per_step, std::ostream& out,
              bool terminal = false);

  /// After `done` of the steps (1 to total_steps, else a weft::ValueError), timed from the
  /// construction; `metrics` are shown after the count with four decimals ("loss 0.4312"). The
  /// last step ends the line and shows the time taken instead of the ETA.
  void update(std::int64_t done, const Scalars& metrics = {});
  /// The same at `elapsed_seconds` since the start, for a caller that keeps its own clock.
  void update(std::int64_t done, const Scalars& metrics, double elapsed_seconds);

  /// The line update(done, metrics, elapsed_seconds) draws, without the carriage return or the newline.
  [[nodiscard]] std::string line(std::int64_t done, const Scalars& metrics, double elapsed_seconds) const;

 private:
  ProgressBar(std::string title, std::int64_t total_steps, std::int64_t examples_per_step,
              std::function<void(std::string_view)> write, bool terminal);
  std::string title_;
  std::int64_t total_, examples_per_step_;
  std::function<void(std::string_view)> write_;  // writes and flushes
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace weft::training
