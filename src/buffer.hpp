#pragma once
// Internal: element buffers of tensors larger than the inline storage.
#include <cstddef>
#include <memory>

namespace weft::detail {

/// Every tensor's first element is aligned to this: a cache line, the width of an AVX-512 register.
inline constexpr std::size_t kDataAlignment = 64;

/// A kDataAlignment-aligned, uninitialised buffer of `bytes` bytes.
std::shared_ptr<void> allocate_buffer(std::size_t bytes);

}  // namespace weft::detail
