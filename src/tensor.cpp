#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <new>
#include <ostream>
#include <sstream>

#include <fmt/format.h>

#include "autodiff/node.hpp"
#include "buffer.hpp"
#include "checked.hpp"
#include "tensor_impl.hpp"

namespace weft {

namespace detail {

[[gnu::tls_model("initial-exec")]] thread_local TraceChecks* recording_tracer = nullptr;

namespace {

/// Allocates the control block of a std::allocate_shared<TensorImpl> with `extra` bytes after it, so
/// that a small tensor's elements share its impl's allocation.
template <class T>
struct TrailingAllocator {
  using value_type = T;
  std::size_t extra;
  explicit TrailingAllocator(std::size_t e) noexcept : extra(e) {}
  template <class U>
  TrailingAllocator(const TrailingAllocator<U>& other) noexcept : extra(other.extra) {}  // NOLINT: rebinding
  T* allocate(std::size_t n) {
    T* p = static_cast<T*>(::operator new(n * sizeof(T) + extra));
    count_tensor_bytes_allocated(extra - kDataAlignment);  // the elements' bytes, as a buffer counts them
    return p;
  }
  void deallocate(T* p, std::size_t) noexcept {
    count_tensor_bytes_freed(extra - kDataAlignment);
    ::operator delete(p);
  }
  template <class U>
  bool operator==(const TrailingAllocator<U>& other) const noexcept {
    return extra == other.extra;
  }
};

}  // namespace

std::size_t byte_size(const Shape& shape, DType dtype) {
  constexpr std::int64_t kElementBytes = 4;  // both dtypes are 4 bytes wide
  // Pointer differences within a buffer must fit in ptrdiff_t, so that is the limit, not size_t's.
  const auto bytes = checked_mul(shape.numel(), kElementBytes);
  if (!bytes)
    throw ShapeError(fmt::format("weft::Tensor: a {} tensor of shape {} ({} elements of {} bytes) needs more than 2^63 "
                                 "- 1 bytes; no buffer can be that large",
                                 name(dtype), shape.str(), shape.numel(), kElementBytes));
  return static_cast<std::size_t>(*bytes);
}

Tensor empty(const Shape& shape, DType dtype) {
  const std::size_t bytes = byte_size(shape, dtype);
  std::shared_ptr<TensorImpl> impl;
  if (bytes < kTrailingBytes) {
    // One allocation: the control block holds the impl, the elements follow it (aligned).
    impl = std::allocate_shared<TensorImpl>(TrailingAllocator<TensorImpl>(bytes + kDataAlignment));
    const auto after = reinterpret_cast<std::uintptr_t>(impl.get() + 1);
    impl->data = reinterpret_cast<void*>((after + kDataAlignment - 1) & ~(kDataAlignment - 1));
  } else {
    impl = std::make_shared<TensorImpl>();
    auto buffer = allocate_buffer(bytes);
    impl->data = buffer.get();
    impl->owner = std::move(buffer);
  }
  impl->shape = shape;
  impl->dtype = dtype;
  return TensorAccess::make(std::move(impl));
}

Tensor alias(const Tensor& t, const Shape& shape) {
  if (recording_tracer != nullptr) [[unlikely]]
    recording_tracer->check_read(t, "a view made outside weft's traced ops");
  const auto& src = TensorAccess::impl(t);
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = src->dtype;
  impl->data = src->data;
  // Whatever keeps the elements alive: the buffer, or the source impl they trail. Impls hold no
  // autodiff nodes, so sharing them never makes a cycle.
  impl->owner = src->owner ? src->owner : std::shared_ptr<const void>(src, src->data);
  return TensorAccess::make(std::move(impl));
}

Tensor view(const Tensor& t, std::size_t byte_offset, const Shape& shape) {
  if (recording_tracer != nullptr) [[unlikely]]
    recording_tracer->check_read(t, "a view made outside weft's traced ops");
  const auto& src = TensorAccess::impl(t);
  const std::size_t bytes = byte_size(shape, src->dtype);
  if (byte_offset % kDataAlignment != 0 || byte_offset > byte_size(src->shape, src->dtype) ||
      bytes > byte_size(src->shape, src->dtype) - byte_offset)
    throw Error(fmt::format("weft::detail::view: the view of shape {} at byte {} does not lie aligned within a tensor "
                            "of shape {}",
                            shape.str(), byte_offset, src->shape.str()));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = src->dtype;
  impl->data = static_cast<char*>(src->data) + byte_offset;
  impl->owner = src->owner ? src->owner : std::shared_ptr<const void>(src, src->data);
  return TensorAccess::make(std::move(impl));
}

void require_defined(const Tensor& t, const char* op) {
  if (!t.defined())
    throw Error(fmt::format("weft::{}: got an empty Tensor (default-constructed); give it a value before using it",
                            op));
}

void require_float(const Tensor& t, const char* op) {
  require_defined(t, op);
  if (t.dtype() != DType::float32)
    throw DTypeError(fmt::format("weft::{}: expects a float32 tensor but got {} with shape {}; "
                                 "convert it with weft::astype(x, DType::float32)",
                                 op, name(t.dtype()), t.shape().str()));
}

}  // namespace detail

namespace {

template <class T>
Tensor from_values(std::vector<T> values, const Shape& shape, const char* what) {
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    std::ostringstream msg;
    msg << "weft::Tensor: " << values.size() << " " << what << " values cannot fill shape " << shape.str()
        << ", which holds " << shape.numel() << " elements; pass exactly that many values or change the shape";
    throw ShapeError(msg.str());
  }
  Tensor t = detail::empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(detail::mutable_data<T>(t), values.data(), values.size() * sizeof(T));
  return t;
}

}  // namespace

Tensor::Tensor(std::vector<float> values, Shape shape) : Tensor(from_values(std::move(values), shape, "float32")) {}
Tensor::Tensor(std::vector<std::int32_t> values, Shape shape)
    : Tensor(from_values(std::move(values), shape, "int32")) {}
Tensor::Tensor(float value) : Tensor(full(Shape{}, value)) {}

const Shape& Tensor::shape() const {
  detail::require_defined(*this, "Tensor::shape");
  return impl_->shape;
}

DType Tensor::dtype() const {
  detail::require_defined(*this, "Tensor::dtype");
  return impl_->dtype;
}

template <class T>
std::span<const T> Tensor::values() const {
  detail::require_defined(*this, "Tensor::values");
  if (detail::recording_tracer != nullptr) [[unlikely]]
    detail::recording_tracer->check_read(*this, "Tensor::values()");
  if (impl_->dtype != dtype_of<T>())
    throw DTypeError(fmt::format("weft::Tensor::values: the tensor is {} but its values were asked for as {}",
                                 name(impl_->dtype), name(dtype_of<T>())));
  return {static_cast<const T*>(impl_->data), static_cast<std::size_t>(impl_->shape.numel())};
}
template std::span<const float> Tensor::values<float>() const;
template std::span<const std::int32_t> Tensor::values<std::int32_t>() const;

std::vector<float> Tensor::to_vector() const {
  detail::require_defined(*this, "Tensor::to_vector");
  if (detail::recording_tracer != nullptr) [[unlikely]]
    detail::recording_tracer->check_read(*this, "Tensor::to_vector()");
  if (impl_->dtype != DType::float32)
    throw DTypeError("weft::Tensor::to_vector: the tensor is int32; use to_int_vector()");
  auto v = values<float>();
  return {v.begin(), v.end()};
}

std::vector<std::int32_t> Tensor::to_int_vector() const {
  detail::require_defined(*this, "Tensor::to_int_vector");
  if (detail::recording_tracer != nullptr) [[unlikely]]
    detail::recording_tracer->check_read(*this, "Tensor::to_int_vector()");
  if (impl_->dtype != DType::int32)
    throw DTypeError("weft::Tensor::to_int_vector: the tensor is float32; use to_vector()");
  auto v = values<std::int32_t>();
  return {v.begin(), v.end()};
}

float Tensor::item() const {
  detail::require_defined(*this, "Tensor::item");
  if (detail::recording_tracer != nullptr) [[unlikely]]
    detail::recording_tracer->check_read(*this, "Tensor::item()");
  if (impl_->shape.numel() != 1)
    throw ShapeError(fmt::format("weft::Tensor::item: needs a tensor of exactly one element, got shape {}; "
                                 "reduce it (weft::sum, weft::mean) or index it first", impl_->shape.str()));
  return impl_->dtype == DType::float32 ? *static_cast<const float*>(impl_->data)
                                        : static_cast<float>(*static_cast<const std::int32_t*>(impl_->data));
}

namespace {

constexpr std::int64_t kPrintEdge = 3;         // elements shown at each end of a long axis...
constexpr std::int64_t kPrintThreshold = 1000;  // ...when the tensor has more elements than this (NumPy's)

template <class T>
void print_axis(std::ostream& os, const T* data, const Shape& shape, int axis, std::int64_t offset,
                std::int64_t stride, int indent, bool summarize) {
  const std::int64_t n = shape[axis];
  const std::int64_t inner = stride / (n == 0 ? 1 : n);
  os << '[';
  for (std::int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kPrintEdge && i == kPrintEdge) {
      os << (axis + 1 == shape.rank() ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      i = n - kPrintEdge;
    }
    if (axis + 1 == shape.rank()) {
      if constexpr (std::is_same_v<T, float>) {
        os << std::setprecision(6) << data[offset + i];
      } else {
        os << data[offset + i];
      }
      if (i + 1 < n) os << ", ";
    } else {
      print_axis(os, data, shape, axis + 1, offset + i * inner, inner, indent + 1, summarize);
      if (i + 1 < n) os << ",\n" << std::string(static_cast<std::size_t>(indent + 1), ' ');
    }
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!impl_) return "Tensor(empty)";
  std::ostringstream os;
  os << "Tensor(shape=" << impl_->shape.str() << ", dtype=" << name(impl_->dtype) << ")\n";
  const bool summarize = impl_->shape.numel() > kPrintThreshold;
  if (impl_->shape.rank() == 0) {
    os << item();
  } else if (impl_->dtype == DType::float32) {
    print_axis(os, static_cast<const float*>(impl_->data), impl_->shape, 0, 0, impl_->shape.numel(), 0, summarize);
  } else {
    print_axis(os, static_cast<const std::int32_t*>(impl_->data), impl_->shape, 0, 0, impl_->shape.numel(), 0,
               summarize);
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

Tensor zeros(Shape shape, DType dtype) {
  Tensor t = detail::empty(shape, dtype);
  std::memset(detail::TensorAccess::impl(t)->data, 0, detail::byte_size(shape, dtype));
  return t;
}

Tensor ones(Shape shape, DType dtype) {
  return dtype == DType::float32 ? full(shape, 1.0f) : full(shape, std::int32_t{1});
}

Tensor full(Shape shape, float value) {
  Tensor t = detail::empty(shape, DType::float32);
  std::fill_n(detail::mutable_data<float>(t), shape.numel(), value);
  return t;
}

Tensor full(Shape shape, std::int32_t value) {
  Tensor t = detail::empty(shape, DType::int32);
  std::fill_n(detail::mutable_data<std::int32_t>(t), shape.numel(), value);
  return t;
}

Tensor arange(std::int64_t stop, DType dtype) { return arange(0, stop, 1, dtype); }

Tensor arange(std::int64_t start, std::int64_t stop, std::int64_t step, DType dtype) {
  if (step == 0) throw ValueError("weft::arange: step must not be 0");
  // The distance and the count in uint64: stop - start can exceed int64 (INT64_MIN to INT64_MAX).
  const bool up = step > 0;
  const bool empty_range = up ? stop <= start : stop >= start;
  const std::uint64_t distance = empty_range ? 0 : up ? static_cast<std::uint64_t>(stop) - static_cast<std::uint64_t>(start)
                                                      : static_cast<std::uint64_t>(start) - static_cast<std::uint64_t>(stop);
  const std::uint64_t stride = up ? static_cast<std::uint64_t>(step) : 0 - static_cast<std::uint64_t>(step);
  const std::uint64_t count = distance == 0 ? 0 : (distance - 1) / stride + 1;
  const auto range = [&] { return fmt::format("arange({}, {}, {})", start, stop, step); };
  if (count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw ShapeError(fmt::format("weft::{} has {} elements, more than a tensor can hold (2^63 - 1); use a shorter "
                                 "range or a larger step",
                                 range(), count));
  const auto n = static_cast<std::int64_t>(count);
  // start + i * step for i < n lies in [start, stop): exact in uint64 arithmetic, then in int64.
  const auto value = [&](std::int64_t i) {
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(start) +
                                     static_cast<std::uint64_t>(i) * static_cast<std::uint64_t>(step));
  };
  if (dtype == DType::int32 && n > 0) {
    const auto fits = [](std::int64_t v) {
      return v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max();
    };
    if (!fits(value(0)) || !fits(value(n - 1)))
      throw ValueError(fmt::format("weft::{}: its values {} to {} do not fit in int32; use DType::float32 or a smaller "
                                   "range",
                                   range(), value(0), value(n - 1)));
  }
  Tensor t = detail::empty(Shape{n}, dtype);
  for (std::int64_t i = 0; i < n; ++i) {
    if (dtype == DType::float32)
      detail::mutable_data<float>(t)[i] = static_cast<float>(value(i));
    else
      detail::mutable_data<std::int32_t>(t)[i] = static_cast<std::int32_t>(value(i));
  }
  return t;
}

}  // namespace weft
