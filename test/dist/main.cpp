// weft-dist-tests: doctest under MPI. Every rank runs every test case in the same order (the
// collectives pair up), and the job fails if any rank fails. Run: mpirun -np 2 weft-dist-tests.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>

#include "weft/dist.hpp"

int main(int argc, char** argv) {
  weft::dist::Session mpi(argc, argv, {.timeout = std::chrono::seconds(60)});
  doctest::Context context(argc, argv);
  const int failed = context.run();
  // Every rank's verdict, so that a failure on one rank fails all (and the job) together.
  const auto failures = weft::dist::psum(weft::Variables::from_leaves(
      {{"test/failed", weft::full(weft::Shape{}, static_cast<float>(failed != 0))}}));
  return failures.at("test/failed").item() > 0 ? 1 : 0;
}
