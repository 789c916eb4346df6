#pragma once
// Internal: element buffers of tensors larger than the inline storage.
#include <cstddef>
#include <memory>

namespace weft::detail {

/// Every tensor's first element is aligned to this: a cache line, the width of an AVX-512 register.
inline constexpr std::size_t kDataAlignment = 64;

/// A kDataAlignment-aligned, uninitialised buffer of `bytes` bytes.
std::shared_ptr<void> allocate_buffer(std::size_t bytes);
/// Hands the freed blocks kept for reuse back to the system: what weft::jit does after a trace,
/// whose values (held as in eager mode) a plan mostly replaces by its arena.
void release_cached_blocks() noexcept;

/// The element bytes of the tensors alive now, and the most alive at once since the last
/// reset_tensor_bytes_peak: how tests measure what a computation keeps (nn::Remat's saving).
struct TensorBytes {
  std::size_t live = 0;
  std::size_t peak = 0;
};
[[nodiscard]] TensorBytes tensor_bytes() noexcept;
/// Starts a new peak from the bytes alive now.
void reset_tensor_bytes_peak() noexcept;
/// Counts `bytes` of elements allocated (tensor.cpp's inline elements; buffers count themselves).
void count_tensor_bytes_allocated(std::size_t bytes) noexcept;
void count_tensor_bytes_freed(std::size_t bytes) noexcept;

}  // namespace weft::detail
