#include "buffer.hpp"

#include <new>

namespace weft::detail {

namespace {
constexpr std::align_val_t kAlignment{64};  // one cache line; the width of an AVX-512 register
}

std::shared_ptr<void> allocate_buffer(std::size_t bytes) {
  void* p = ::operator new(bytes, kAlignment);
  return {p, [](void* q) { ::operator delete(q, kAlignment); }};
}

}  // namespace weft::detail
