#pragma once
// Shared by the IDX fuzz targets: the reader takes a path, so each input is written to an
// in-memory file (memfd) and read through /proc/self/fd, with every reader entry point.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "weft/io/idx.hpp"

namespace weft::fuzz {

/// Reads `bytes` as an IDX file with read_idx, read_idx_images and read_idx_labels. A DataError is
/// the expected answer to bad input; any other exception escapes, and libFuzzer reports it.
inline void read_all_ways(std::span<const std::uint8_t> bytes) {
  static const int fd = [] {
    const int f = ::memfd_create("weft-fuzz-idx", 0);
    if (f < 0) std::abort();
    return f;
  }();
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (::ftruncate(fd, 0) != 0) std::abort();
  for (std::size_t at = 0; at < bytes.size();) {
    const ssize_t n = ::pwrite(fd, bytes.data() + at, bytes.size() - at, static_cast<off_t>(at));
    if (n <= 0) std::abort();
    at += static_cast<std::size_t>(n);
  }
  try {
    const io::IdxData d = io::read_idx(path);
    std::size_t total = 1;
    for (const auto e : d.dims) total *= static_cast<std::size_t>(e);
    if (total != d.bytes.size()) std::abort();  // the extents must describe the bytes returned
  } catch (const io::DataError&) {
  }
  try {
    const Tensor images = io::read_idx_images(path);
    if (images.rank() != 4 || images.shape()[3] != 1) std::abort();
    for (const float v : images.values<float>())
      if (!(v >= 0.0f && v <= 1.0f)) std::abort();
  } catch (const io::DataError&) {
  }
  try {
    const Tensor labels = io::read_idx_labels(path);
    for (const std::int32_t v : labels.values<std::int32_t>())
      if (v < 0 || v > 255) std::abort();
  } catch (const io::DataError&) {
  }
}

}  // namespace weft::fuzz
