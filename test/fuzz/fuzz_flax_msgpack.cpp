// libFuzzer harness of the Flax msgpack reader: any input either loads or is a weft::io::DataError;
// any other exception, a crash or a sanitizer report is a finding. Run by .ci/fuzz-checkpoints.
#include <cstddef>
#include <cstdint>
#include <span>

#include "weft/io/flax_msgpack.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const weft::Variables v = weft::io::from_flax_msgpack_bytes(std::as_bytes(std::span(data, size)), "fuzz-input");
    (void)weft::io::to_flax_msgpack_bytes(v);
  } catch (const weft::io::DataError&) {
  }
  return 0;
}
