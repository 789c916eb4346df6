#pragma once
// Internal: element buffers of tensors larger than the inline storage.
#include <cstddef>
#include <memory>

namespace weft::detail {

/// A 64-byte-aligned, uninitialised buffer of `bytes` bytes.
std::shared_ptr<void> allocate_buffer(std::size_t bytes);

}  // namespace weft::detail
