// checkpoint-tool: weft's side of the tests that another process drives.
//
//   checkpoint-tool resave DATA OUT   loads DATA/mlp.safetensors and DATA/mlp.msgpack (the Python
//                                     references) and saves them again into OUT, the msgpack once
//                                     more with a small chunk size (mlp_chunked.msgpack), for
//                                     test/data/make_checkpoint_refs.py to read back
//   checkpoint-tool save-loop DIR N   saves steps N, N+1, ... until it is killed: each as
//                                     DIR/plain.safetensors, DIR/plain.msgpack and a step of the
//                                     CheckpointManager in DIR/managed (the kill test)
// The checkpoint helpers of the tests, without doctest's test registry (this is no test program).
#define DOCTEST_CONFIG_DISABLE
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "../src/io/flax_msgpack_internal.hpp"
#include "checkpoint_testing.hpp"
#include "weft/io/checkpoint_manager.hpp"
#include "weft/io/flax_msgpack.hpp"
#include "weft/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace weft;

namespace {

int resave(const fs::path& data, const fs::path& out) {
  io::save_safetensors(out / "mlp.safetensors", io::load_safetensors(data / "mlp.safetensors"),
                       io::load_safetensors_metadata(data / "mlp.safetensors"));
  const Variables flax = io::load_flax_msgpack(data / "mlp.msgpack");
  io::save_flax_msgpack(out / "mlp.msgpack", flax);
  const auto chunked = io::detail::flax_msgpack_bytes(flax, 16);
  std::ofstream f(out / "mlp_chunked.msgpack", std::ios::binary);
  f.write(reinterpret_cast<const char*>(chunked.data()), static_cast<std::streamsize>(chunked.size()));
  return f.good() ? 0 : 1;
}

[[noreturn]] void save_loop(const fs::path& dir, std::int64_t first) {
  const io::CheckpointManager manager(dir / "managed", {.max_to_keep = 2});
  for (std::int64_t step = first;; ++step) {
    const auto [variables, metadata] = testing::kill_test_checkpoint(step);
    io::save_safetensors(dir / "plain.safetensors", variables, metadata);
    io::save_flax_msgpack(dir / "plain.msgpack", variables);
    manager.save(step, {variables, metadata});
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::string_view(argv[1]) == "resave") return resave(argv[2], argv[3]);
    if (argc == 4 && std::string_view(argv[1]) == "save-loop") save_loop(argv[2], std::stoll(argv[3]));
  } catch (const Error& e) {
    std::fprintf(stderr, "checkpoint-tool: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: checkpoint-tool resave DATA OUT | save-loop DIR FIRST_STEP\n");
  return 2;
}
