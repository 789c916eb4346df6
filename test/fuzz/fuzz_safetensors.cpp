// libFuzzer harness of the safetensors reader: any input either loads or is a weft::io::DataError;
// any other exception, a crash or a sanitizer report is a finding. Run by .ci/fuzz-checkpoints.
#include <cstddef>
#include <cstdint>
#include <span>

#include "weft/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const weft::Variables v = weft::io::from_safetensors_bytes(std::as_bytes(std::span(data, size)), "fuzz-input");
    // What loads must save again: the tree is whole.
    (void)weft::io::to_safetensors_bytes(v);
  } catch (const weft::io::DataError&) {
  }
  return 0;
}
