#pragma once
// Internal: the representation behind weft::Tensor and the few ways kernels
// may touch it. Not installed; only src/ includes this.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "weft/tensor.hpp"

namespace weft::detail {

/// The checks a weft::jit trace makes on code outside its ops (jit/trace.hpp's Tracer implements
/// them): a read of `t` (`what` says which access) or a write into it throws when `t` holds a value
/// the trace computes from the jitted function's inputs, since the trace would bake in this call's
/// value; so does a draw from a key derived from an input key. An interface, so that the element
/// accessors below need nothing of the tracer at link time.
class TraceChecks {
 public:
  virtual void check_read(const Tensor& t, const char* what) = 0;
  virtual void check_write(const Tensor& t) = 0;
  virtual void check_key(std::array<std::uint32_t, 2> words, const char* what) = 0;

 protected:
  ~TraceChecks() = default;
};
/// The weft::jit trace being recorded on this thread while control is outside every traced op
/// (the function's own code, the autodiff engine), else null: inside an op the op's own kernels
/// read and write freely. initial-exec: one load from the thread pointer, as the check below runs
/// on every element access of every kernel. Defined in tensor.cpp.
[[gnu::tls_model("initial-exec")]] extern thread_local TraceChecks* recording_tracer;

/// Elements of tensors below this many bytes live in the same allocation as their impl (one
/// allocation per tensor); larger ones in a separate, cached buffer (buffer.hpp).
inline constexpr std::size_t kTrailingBytes = 64 * 1024;

struct TensorImpl {
  Shape shape;
  DType dtype = DType::float32;
  void* data = nullptr;               // first element (64-byte aligned)
  std::shared_ptr<const void> owner;  // keeps `data` alive; empty when the elements trail this impl
};

struct TensorAccess {
  static const std::shared_ptr<TensorImpl>& impl(const Tensor& t) { return t.impl_; }
  static std::shared_ptr<autodiff::Node>& node(Tensor& t) { return t.node_; }
  static const std::shared_ptr<autodiff::Node>& node(const Tensor& t) { return t.node_; }
  static Tensor make(std::shared_ptr<TensorImpl> impl) { return Tensor(std::move(impl)); }
};

/// The bytes of the elements of a tensor of `shape` and `dtype`; ShapeError naming the shape when
/// they overflow. Every allocation of elements is sized by it.
std::size_t byte_size(const Shape& shape, DType dtype);

/// A new tensor whose elements are uninitialised; the caller fills them before sharing it.
Tensor empty(const Shape& shape, DType dtype);

/// Mutable access to a tensor the caller has just created with `empty` (nothing else sees it yet).
template <class T>
T* mutable_data(Tensor& t) {
  if (recording_tracer != nullptr) [[unlikely]]
    recording_tracer->check_write(t);
  return static_cast<T*>(TensorAccess::impl(t)->data);
}

template <class T>
const T* data(const Tensor& t) {
  if (recording_tracer != nullptr) [[unlikely]]
    recording_tracer->check_read(t, "a kernel");
  return static_cast<const T*>(TensorAccess::impl(t)->data);
}

/// The same elements under another shape of equal size (no copy, no gradient recorded).
Tensor alias(const Tensor& t, const Shape& shape);

/// Elements [byte_offset, byte_offset + byte_size(shape)) of `t` as a tensor of `shape` that keeps
/// t's elements alive (no copy). byte_offset must keep the kDataAlignment of every tensor's first
/// element; an Error otherwise or when the view does not lie within t.
Tensor view(const Tensor& t, std::size_t byte_offset, const Shape& shape);

/// The same value without its autodiff node (what a node captures; no copy, no allocation).
inline Tensor detach(const Tensor& t) {
  Tensor d = t;
  TensorAccess::node(d).reset();
  return d;
}

inline autodiff::Node* node_of(const Tensor& t) noexcept { return TensorAccess::node(t).get(); }
inline const std::shared_ptr<autodiff::Node>& node_ptr(const Tensor& t) noexcept { return TensorAccess::node(t); }
inline void set_node(Tensor& t, std::shared_ptr<autodiff::Node> node) { TensorAccess::node(t) = std::move(node); }

/// Throws weft::Error naming `op` when `t` is empty (default-constructed).
void require_defined(const Tensor& t, const char* op);
/// Throws DTypeError naming `op` when `t` is not float32.
void require_float(const Tensor& t, const char* op);

}  // namespace weft::detail
