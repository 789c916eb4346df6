#pragma once
// Internal: the representation behind weft::Tensor and the few ways kernels
// may touch it. Not installed; only src/ includes this.
#include <cstddef>
#include <memory>

#include "weft/tensor.hpp"

namespace weft::detail {

/// Tensors up to this many bytes keep their elements inside the impl (one allocation per tensor).
inline constexpr std::size_t kInlineBytes = 64;

struct TensorImpl {
  Shape shape;
  DType dtype = DType::float32;
  void* data = nullptr;                   // first element
  std::shared_ptr<const void> owner;      // keeps `data` alive; empty when it points into `inline_buf`
  std::shared_ptr<autodiff::Node> node;   // how this value was computed, when recorded for a gradient
  alignas(64) std::byte inline_buf[kInlineBytes];
};

struct TensorAccess {
  static const std::shared_ptr<TensorImpl>& impl(const Tensor& t) { return t.impl_; }
  static Tensor make(std::shared_ptr<TensorImpl> impl) { return Tensor(std::move(impl)); }
};

/// A new tensor whose elements are uninitialised; the caller fills them before sharing it.
Tensor empty(const Shape& shape, DType dtype);

/// Mutable access to a tensor the caller has just created with `empty` (nothing else sees it yet).
template <class T>
T* mutable_data(Tensor& t) {
  return static_cast<T*>(TensorAccess::impl(t)->data);
}

template <class T>
const T* data(const Tensor& t) {
  return static_cast<const T*>(TensorAccess::impl(t)->data);
}

/// The same elements under another shape of equal size (no copy, no gradient recorded).
Tensor alias(const Tensor& t, const Shape& shape);

/// The same elements in a new impl that carries no autodiff node (safe to capture in a node,
/// including the node of the tensor itself).
Tensor detach(const Tensor& t);

inline autodiff::Node* node_of(const Tensor& t) noexcept {
  const auto& impl = TensorAccess::impl(t);
  return impl ? impl->node.get() : nullptr;
}
inline const std::shared_ptr<autodiff::Node>& node_ptr(const Tensor& t) noexcept {
  return TensorAccess::impl(t)->node;
}
inline void set_node(Tensor& t, std::shared_ptr<autodiff::Node> node) {
  TensorAccess::impl(t)->node = std::move(node);
}

/// Throws weft::Error naming `op` when `t` is empty (default-constructed).
void require_defined(const Tensor& t, const char* op);
/// Throws DTypeError naming `op` when `t` is not float32.
void require_float(const Tensor& t, const char* op);

}  // namespace weft::detail
