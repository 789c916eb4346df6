// weft::training::ProgressBar: the text it writes, on a terminal and into a log.
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "testing.hpp"
#include "weft/training/progress_bar.hpp"

using namespace weft;
using weft::testing::check_throws_with;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("ProgressBar into a log: one line per tenth, with examples/s and the ETA") {
  std::ostringstream out;
  training::ProgressBar bar("epoch 1/3", 20, 32, out);
  // Half a second a step: 64 examples/s throughout.
  for (int done = 1; done <= 20; ++done) bar.update(done, {{"loss", 1.0 / done}}, 0.5 * done);
  const std::vector<std::string> lines = lines_of(out.str());
  REQUIRE(lines.size() == 10);
  CHECK(lines[0] == "epoch 1/3 [###...........................] 2/20 loss 0.5000 64 examples/s ETA 0:09");
  CHECK(lines[4] == "epoch 1/3 [###############...............] 10/20 loss 0.1000 64 examples/s ETA 0:05");
  CHECK(lines[9] == "epoch 1/3 [##############################] 20/20 loss 0.0500 64 examples/s in 0:10");
  CHECK(out.str().find('\r') == std::string::npos);
}

TEST_CASE("ProgressBar on a terminal: redrawn in place after every step, one newline at the end") {
  std::ostringstream out;
  training::ProgressBar bar("eval", 4, 100, out, /*terminal=*/true);
  for (int done = 1; done <= 4; ++done) bar.update(done, {{"loss", 0.25}, {"accuracy", 0.875}}, 2.0 * done);
  const std::string text = out.str();
  CHECK(std::count(text.begin(), text.end(), '\r') == 4);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  CHECK(text.starts_with("\reval [#######.......................] 1/4 loss 0.2500 accuracy 0.8750 50 examples/s ETA 0:06\r"));
  CHECK(text.ends_with("\reval [##############################] 4/4 loss 0.2500 accuracy 0.8750 50 examples/s in 0:08\n"));
}

TEST_CASE("ProgressBar: fewer than ten steps print every step; long times read h:mm:ss") {
  std::ostringstream out;
  training::ProgressBar bar("epoch 2/2", 3, 1, out);
  for (int done = 1; done <= 3; ++done) bar.update(done, {}, 1200.0 * done);
  const std::vector<std::string> lines = lines_of(out.str());
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "epoch 2/2 [##########....................] 1/3 0 examples/s ETA 40:00");
  CHECK(lines[2] == "epoch 2/2 [##############################] 3/3 0 examples/s in 1:00:00");
  // The ETA is rounded up: 0.2 s left reads 0:01, not 0:00.
  CHECK(bar.line(2, {}, 0.4).ends_with("ETA 0:01"));
  // The time taken is rounded to the nearest second.
  CHECK(bar.line(3, {}, 0.4).ends_with("in 0:00"));
}

TEST_CASE("ProgressBar: bad steps") {
  std::ostringstream out;
  training::ProgressBar bar("epoch 1/1", 5, 8, out);
  check_throws_with<ValueError>([&] { bar.update(6, {}, 1.0); },
                                {"ProgressBar::update", "step 6 of 5", "1 to 5"});
  check_throws_with<ValueError>([&] { bar.update(0); }, {"step 0 of 5"});
  check_throws_with<ValueError>([&] { training::ProgressBar("x", 0, 8, out); }, {"0 steps of 8 examples"});
  CHECK(out.str().empty());
}
