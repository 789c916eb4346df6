#pragma once
// weft::Tensor: an immutable n-dimensional array with a shared buffer.
//
// A Tensor is a value: copying it is cheap (it shares the buffer) and no
// operation changes a tensor that another piece of code can see. Ops in
// ops.hpp return new tensors. When a gradient is being taken (autodiff.hpp),
// a tensor also carries the node that recorded how it was computed; the same
// type and the same op names serve both cases.
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "weft/dtype.hpp"
#include "weft/error.hpp"
#include "weft/shape.hpp"

namespace weft {

namespace autodiff {
class Node;
}
namespace detail {
struct TensorImpl;
struct TensorAccess;
}  // namespace detail

class Tensor {
 public:
  /// An empty tensor: it holds nothing, and ops given one throw. `defined()` tells.
  Tensor() = default;
  /// float32 tensor from row-major values; throws ShapeError when the count disagrees with `shape`.
  Tensor(std::vector<float> values, Shape shape);
  /// int32 tensor (labels, indices) from row-major values.
  Tensor(std::vector<std::int32_t> values, Shape shape);
  /// Braced values: `Tensor({1.f, 2.f}, Shape{2})` is float32, `Tensor({1, 2}, Shape{2})` int32.
  Tensor(std::initializer_list<float> values, Shape shape) : Tensor(std::vector<float>(values), shape) {}
  Tensor(std::initializer_list<std::int32_t> values, Shape shape) : Tensor(std::vector<std::int32_t>(values), shape) {}
  /// A float32 scalar (rank 0).
  explicit Tensor(float value);

  [[nodiscard]] bool defined() const noexcept { return impl_ != nullptr; }
  [[nodiscard]] const Shape& shape() const;
  [[nodiscard]] int rank() const { return shape().rank(); }
  [[nodiscard]] std::int64_t size() const { return shape().numel(); }
  [[nodiscard]] DType dtype() const;

  /// A copy of the values of a float32 tensor (row-major).
  [[nodiscard]] std::vector<float> to_vector() const;
  /// A copy of the values of an int32 tensor (row-major).
  [[nodiscard]] std::vector<std::int32_t> to_int_vector() const;
  /// The one element of a tensor of size 1, as float (int32 values are converted).
  [[nodiscard]] float item() const;

  /// Read-only view of the elements; T must match dtype().
  template <class T>
  [[nodiscard]] std::span<const T> values() const;

  /// True when this tensor is being recorded for a gradient (inside weft::grad).
  [[nodiscard]] bool is_tracked() const noexcept { return node_ != nullptr; }

  /// NumPy-like text: shape, dtype and (up to a limit) the values.
  [[nodiscard]] std::string str() const;

 private:
  explicit Tensor(std::shared_ptr<detail::TensorImpl> impl) noexcept : impl_(std::move(impl)) {}
  std::shared_ptr<detail::TensorImpl> impl_;  // shape, dtype and the elements (immutable)
  // How this value was computed, when it is recorded for a gradient. Kept beside the impl, not in
  // it: a node captures the values its gradient needs, and those never point back at a node.
  std::shared_ptr<autodiff::Node> node_;
  friend struct detail::TensorAccess;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

/// Filled tensors.
[[nodiscard]] Tensor zeros(Shape shape, DType dtype = DType::float32);
[[nodiscard]] Tensor ones(Shape shape, DType dtype = DType::float32);
[[nodiscard]] Tensor full(Shape shape, float value);
[[nodiscard]] Tensor full(Shape shape, std::int32_t value);
/// 0, 1, ..., stop-1 as float32 (weft's default element type; NumPy would give int), or as `dtype`.
[[nodiscard]] Tensor arange(std::int64_t stop, DType dtype = DType::float32);
/// start, start+step, ... below stop (above stop for a negative step). ShapeError when the range has
/// more than 2^63 - 1 elements; ValueError when an int32 range holds values outside int32.
[[nodiscard]] Tensor arange(std::int64_t start, std::int64_t stop, std::int64_t step = 1,
                            DType dtype = DType::float32);

}  // namespace weft
