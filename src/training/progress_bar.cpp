#include "weft/training/progress_bar.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ostream>

#include <fmt/format.h>

#include "weft/error.hpp"

namespace weft::training {

namespace {

constexpr int kWidth = 30;  // characters of the bar between the brackets

/// "1:05" or "2:03:09". An ETA is rounded up (0.2 s left reads 0:01 until it is done), a time
/// taken to the nearest second.
std::string clock_time(double seconds, bool round_up) {
  const double whole = round_up ? std::ceil(std::max(seconds, 0.0)) : std::round(std::max(seconds, 0.0));
  const auto s = static_cast<long long>(whole);
  std::array<char, 32> text{};
  if (s >= 3600)
    std::snprintf(text.data(), text.size(), "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(text.data(), text.size(), "%lld:%02lld", s / 60, s % 60);
  return text.data();
}

}  // namespace

ProgressBar::ProgressBar(std::string title, std::int64_t total_steps, std::int64_t examples_per_step, std::FILE* out)
    : ProgressBar(
          std::move(title), total_steps, examples_per_step,
          [out](std::string_view text) {
            std::fwrite(text.data(), 1, text.size(), out);
            std::fflush(out);
          },
          isatty(fileno(out)) != 0) {}

ProgressBar::ProgressBar(std::string title, std::int64_t total_steps, std::int64_t examples_per_step,
                         std::ostream& out, bool terminal)
    : ProgressBar(
          std::move(title), total_steps, examples_per_step,
          [&out](std::string_view text) { out << text << std::flush; }, terminal) {}

ProgressBar::ProgressBar(std::string title, std::int64_t total_steps, std::int64_t examples_per_step,
                         std::function<void(std::string_view)> write, bool terminal)
    : title_(std::move(title)), total_(total_steps), examples_per_step_(examples_per_step), write_(std::move(write)),
      terminal_(terminal), start_(std::chrono::steady_clock::now()) {
  if (total_steps < 1 || examples_per_step < 1)
    throw ValueError(fmt::format("weft::training::ProgressBar: {} steps of {} examples; both must be at least 1",
                                 total_steps, examples_per_step));
}

void ProgressBar::update(std::int64_t done, const Scalars& metrics) {
  update(done, metrics, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

void ProgressBar::update(std::int64_t done, const Scalars& metrics, double elapsed_seconds) {
  if (done < 1 || done > total_)
    throw ValueError(fmt::format("weft::training::ProgressBar::update: step {} of {}; "
                                 "pass the steps done so far, 1 to {}", done, total_, total_));
  const bool last = done == total_;
  // Off a terminal, only the step that completes a tenth (and the last) is written.
  if (!terminal_ && !last && done * 10 / total_ == (done - 1) * 10 / total_) return;
  std::string text = terminal_ ? "\r" : "";  // redrawn over the previous line
  text += line(done, metrics, elapsed_seconds);
  if (!terminal_ || last) text += '\n';
  write_(text);
}

std::string ProgressBar::line(std::int64_t done, const Scalars& metrics, double elapsed_seconds) const {
  const auto filled = static_cast<std::size_t>(kWidth * std::clamp<std::int64_t>(done, 0, total_) / total_);
  std::string out = title_ + " [" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] " +
                    std::to_string(done) + "/" + std::to_string(total_);
  std::array<char, 64> text{};
  for (const auto& [name, value] : metrics) {
    std::snprintf(text.data(), text.size(), " %.4f", value);
    out += " " + name + text.data();
  }
  const double seconds = std::max(elapsed_seconds, 1e-9);
  std::snprintf(text.data(), text.size(), " %.0f examples/s",
                static_cast<double>(done * examples_per_step_) / seconds);
  out += text.data();
  if (done >= total_)
    out += " in " + clock_time(elapsed_seconds, /*round_up=*/false);
  else
    out += " ETA " + clock_time(elapsed_seconds / static_cast<double>(std::max<std::int64_t>(done, 1)) *
                                    static_cast<double>(total_ - done),
                                /*round_up=*/true);
  return out;
}

}  // namespace weft::training
