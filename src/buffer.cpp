#include "buffer.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace weft::detail {

namespace {

constexpr std::align_val_t kAlignment{kDataAlignment};
constexpr std::size_t kCachedFrom = 64 * 1024;  // smaller tensors keep their elements beside their impl
constexpr std::size_t kHugeFrom = 4 * 1024 * 1024;       // blocks worth transparent huge pages
constexpr std::size_t kHugeAlignment = 2 * 1024 * 1024;
constexpr std::size_t kCacheLimit = 1024ull * 1024 * 1024;  // bytes kept for reuse at most

/// Rounds up to one of 8 sizes per power of two, so that blocks of nearby sizes are reused.
std::size_t size_class(std::size_t bytes) {
  std::size_t p = 1;
  while (p * 16 <= bytes) p <<= 1;
  return (bytes + p - 1) / p * p;
}

/// Freed large blocks, kept for the next allocation of the same size class.
///
/// This is the one piece of process-wide mutable state in weft, deliberately: a fresh large block
/// from the system is page-faulted in again on first touch (about 3 us per 4 KiB page on a VM),
/// which costs more than the arithmetic of most ops on it. Keeping freed blocks (as PyTorch's
/// allocator does, or glibc when told to via GLIBC_TUNABLES) removes that cost. Bounded by
/// kCacheLimit; thread-safe; invisible to results.
class BlockCache {
 public:
  void* take(std::size_t cls) {
    std::lock_guard lock(mutex_);
    auto it = free_.find(cls);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= cls;
    return p;
  }
  bool give(void* p, std::size_t cls) {
    std::lock_guard lock(mutex_);
    if (cached_ + cls > kCacheLimit) return false;
    free_[cls].push_back(p);
    cached_ += cls;
    return true;
  }
  void release_all() noexcept {
    std::lock_guard lock(mutex_);
    for (auto& [cls, blocks] : free_)
      for (void* p : blocks) release(p, cls);
    free_.clear();
    cached_ = 0;
  }
  static void release(void* p, std::size_t cls) {
    ::operator delete(p, cls >= kHugeFrom ? std::align_val_t{kHugeAlignment} : kAlignment);
  }

 private:
  std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_ = 0;
};

/// glibc returns freed memory to the system eagerly (blocks above a dynamic mmap threshold are
/// unmapped; a free heap top above the trim threshold is released), so the next allocation of the
/// same size is page-faulted in again. That hits oneDNN's internal packing buffers on every GEMM
/// call, which weft does not allocate. Once, on the first large tensor, glibc is told to keep freed
/// memory for reuse: the setting of the PyTorch C++ frontend's best configuration (GLIBC_TUNABLES
/// mmap_threshold and trim_threshold), made by the library so that users need no environment.
void keep_freed_memory() {
  static const bool done = [] {
    ::mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);  // glibc's maximum: blocks up to 32 MiB come from the heap
    ::mallopt(M_TRIM_THRESHOLD, 1 << 30);            // keep up to 1 GiB of free heap top
    return true;
  }();
  (void)done;
}

BlockCache& cache() {
  // Never destroyed: a tensor held by a static object may be freed after any static destructor ran.
  // The blocks it holds at exit stay reachable and go back to the system with the process.
  static BlockCache* const c = new BlockCache();
  return *c;
}

/// The element bytes of live tensors and their peak. Process-wide like the block cache, and for
/// the same reason: every tensor of every call allocates through here, and a counter passed down to
/// each allocation would have to reach every op. Two relaxed atomics, read by tests only; they
/// change no result.
std::atomic<std::size_t> live_bytes{0};
std::atomic<std::size_t> peak_bytes{0};

}  // namespace

void count_tensor_bytes_allocated(std::size_t bytes) noexcept {
  const std::size_t now = live_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  std::size_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void count_tensor_bytes_freed(std::size_t bytes) noexcept { live_bytes.fetch_sub(bytes, std::memory_order_relaxed); }

void release_cached_blocks() noexcept {
  cache().release_all();
  ::malloc_trim(0);  // the heap's free pages too: keep_freed_memory told glibc to keep them
}

TensorBytes tensor_bytes() noexcept {
  return {live_bytes.load(std::memory_order_relaxed), peak_bytes.load(std::memory_order_relaxed)};
}

void reset_tensor_bytes_peak() noexcept { peak_bytes.store(live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed); }

std::shared_ptr<void> allocate_buffer(std::size_t bytes) {
  count_tensor_bytes_allocated(bytes);
  if (bytes < kCachedFrom) {
    void* p = ::operator new(bytes, kAlignment);
    return {p, [bytes](void* q) {
              count_tensor_bytes_freed(bytes);
              ::operator delete(q, kAlignment);
            }};
  }
  keep_freed_memory();
  const std::size_t cls = size_class(bytes);
  void* p = cache().take(cls);
  if (!p) {
    if (cls >= kHugeFrom) {
      p = ::operator new(cls, std::align_val_t{kHugeAlignment});
      ::madvise(p, cls, MADV_HUGEPAGE);  // fewer, larger page faults on first touch; a hint only
    } else {
      p = ::operator new(cls, kAlignment);
    }
  }
  return {p, [cls, bytes](void* q) {
            count_tensor_bytes_freed(bytes);
            if (!cache().give(q, cls)) BlockCache::release(q, cls);
          }};
}

}  // namespace weft::detail
