#include "weft/io/batches.hpp"

#include <string>

#include "weft/ops.hpp"

namespace weft::io {

std::int64_t num_batches(std::int64_t n, std::int64_t batch_size, bool drop_last) {
  if (batch_size <= 0)
    throw ValueError("weft::io::num_batches: batch_size is " + std::to_string(batch_size) +
                     "; it must be at least 1");
  if (n < 0)
    throw ValueError("weft::io::num_batches: the number of examples is " + std::to_string(n) +
                     "; it must be at least 0");
  // ceil without n + batch_size - 1, which overflows for a batch_size near INT64_MAX.
  return drop_last || n == 0 ? n / batch_size : (n - 1) / batch_size + 1;
}

namespace detail {

void check_batches(const Tensor& images, const Tensor& labels, std::int64_t batch_size) {
  if (!images.defined() || !labels.defined())
    throw Error(std::string("weft::io::batches: the ") + (images.defined() ? "labels" : "images") +
                " tensor is empty (default-constructed); pass the loaded data");
  if (images.rank() == 0 || labels.rank() == 0)
    throw ShapeError(std::string("weft::io::batches: the ") + (images.rank() == 0 ? "images" : "labels") +
                     " tensor is a scalar (shape ()); batches take rows along axis 0, so it needs rank >= 1");
  if (images.shape()[0] != labels.shape()[0])
    throw ShapeError("weft::io::batches: images of shape " + images.shape().str() + " have " +
                     std::to_string(images.shape()[0]) + " rows but labels of shape " + labels.shape().str() +
                     " have " + std::to_string(labels.shape()[0]) +
                     "; every image needs one label (were they loaded from the same split?)");
  if (batch_size <= 0)
    throw ValueError("weft::io::batches: batch_size is " + std::to_string(batch_size) + "; it must be at least 1");
}

Batch gather_batch(const Tensor& images, const Tensor& labels, const Tensor& order, std::int64_t start,
                   std::int64_t stop) {
  // Rows go through take in both cases: it copies whole rows in parallel (slice_axis walks a
  // [b, 28, 28, 1] block element by element, some 100 times slower).
  const Tensor rows = order.defined() ? slice_axis(order, 0, start, stop) : arange(start, stop, 1, DType::int32);
  return {take(images, rows), take(labels, rows)};
}

}  // namespace detail

}  // namespace weft::io
