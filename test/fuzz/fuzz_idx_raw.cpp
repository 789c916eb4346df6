// libFuzzer target: any bytes as an IDX file (gzip-compressed when they start with 1f 8b).
#include "fuzz_idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  weft::fuzz::read_all_ways({data, size});
  return 0;
}
