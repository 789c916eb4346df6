// checkpoint-bench: save and load throughput of a 1 GiB tree in weft's checkpoint formats, next to
// the machine's memory copy bandwidth measured in the same run (the bound for a load from the page
// cache, which is one copy into the tensors' buffers).
//
//   checkpoint-bench [DIR] [--gib N]   (DIR: where the files go, default the temporary directory)
//
// Each figure is the best of three runs. Saves include the fsync of the file and the directory, so
// they also measure the disk; loads read a file just written, from the page cache.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/io/flax_msgpack.hpp"
#include "weft/io/safetensors.hpp"
#include "weft/ops.hpp"

namespace fs = std::filesystem;
using namespace weft;

namespace {

double best_seconds(const std::function<void()>& f) {
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = fs::temp_directory_path();
  double gib = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--gib" && i + 1 < argc) gib = std::stod(argv[++i]);
    else dir = a;
  }
  // 16 leaves of [n, 4096] float32 (Linen-like kernels), gib GiB together.
  const auto rows = static_cast<std::int64_t>(gib * (1 << 30) / 16 / 4096 / 4);
  std::vector<std::pair<std::string, Tensor>> leaves;
  for (int i = 0; i < 16; ++i)
    leaves.emplace_back("params/Dense_" + std::to_string(i) + "/kernel", full({rows, 4096}, static_cast<float>(i)));
  const Variables tree = Variables::from_leaves(leaves);
  const double bytes = static_cast<double>(tree.num_elements()) * 4;
  const double gb = bytes / (1 << 30);

  const auto size = static_cast<std::size_t>(bytes);
  const auto src = std::make_unique<char[]>(size), dst = std::make_unique<char[]>(size);
  std::memset(src.get(), 1, size);
  std::memset(dst.get(), 2, size);  // both resident before timing
  const double copy = gb / best_seconds([&] { std::memcpy(dst.get(), src.get(), size); });
  std::printf("checkpoint tree_gib=%.2f dir=%s\n", gb, dir.c_str());
  std::printf("checkpoint memcpy gib_s=%.2f\n", copy);

  const fs::path st = dir / "checkpoint-bench.safetensors", mp = dir / "checkpoint-bench.msgpack";
  const auto report = [&](const char* what, double seconds) {
    std::printf("checkpoint %s gib_s=%.2f of_memcpy=%.2f\n", what, gb / seconds, gb / seconds / copy);
    std::fflush(stdout);
  };
  report("save_safetensors", best_seconds([&] { io::save_safetensors(st, tree); }));
  report("load_safetensors", best_seconds([&] { (void)io::load_safetensors(st); }));
  report("save_flax_msgpack", best_seconds([&] { io::save_flax_msgpack(mp, tree); }));
  report("load_flax_msgpack", best_seconds([&] { (void)io::load_flax_msgpack(mp); }));
  fs::remove(st);
  fs::remove(mp);
  return 0;
}
