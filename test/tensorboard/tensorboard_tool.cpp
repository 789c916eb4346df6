// tensorboard-tool DIR: writes an event file of known scalars into DIR and prints its path, for
// test/tensorboard/tensorboard_events_test.py to read back with TensorFlow's message definitions.
// The script holds the same values: change both together.
#include <cstdio>
#include <cstdint>
#include <exception>

#include "weft/training/tensorboard_writer.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tensorboard-tool DIR\n");
    return 2;
  }
  try {
    weft::training::TensorBoardWriter writer(argv[1]);
    writer.write_scalars(0, {{"loss", 2.5}, {"accuracy", 0.125}});
    writer.write_scalars(1, {{"train/loss", 0.1}});            // rounded to float32
    writer.write_scalars(std::int64_t{1} << 40, {{"loss", -3.0}});  // a six-byte varint
    writer.write_scalars(-5, {{"negative step", 1e-3}});        // a ten-byte varint
    writer.write_scalars(2, {});                                // an empty summary
    std::printf("%s\n", writer.path().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tensorboard-tool: %s\n", e.what());
    return 1;
  }
}
