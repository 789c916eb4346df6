// The child of dist_failure_test.py: rank 1 never joins the psum that rank 0 waits in, so rank 0
// must stop with a TimeoutError naming rank 1 once the timeout (1 s) has passed, and end the job.
#include <chrono>
#include <cstdio>
#include <thread>

#include "weft/dist.hpp"
#include "weft/ops.hpp"

int main(int argc, char** argv) {
  weft::dist::init(argc, argv, {.timeout = std::chrono::seconds(1)});
  if (weft::dist::rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(60));  // hangs
  try {
    (void)weft::dist::psum(weft::Variables::from_leaves({{"params/w", weft::ones(weft::Shape{3})}}));
  } catch (const weft::dist::TimeoutError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    weft::dist::abort(3);
  }
  weft::dist::finalize();
  return 0;
}
