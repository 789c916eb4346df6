#include "weft/io/batches.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "weft/ops.hpp"

namespace weft::io {

std::int64_t num_batches(std::int64_t n, std::int64_t batch_size, bool drop_last) {
  if (batch_size <= 0)
    throw ValueError(fmt::format("weft::io::num_batches: batch_size is {}; it must be at least 1", batch_size));
  if (n < 0)
    throw ValueError(fmt::format("weft::io::num_batches: the number of examples is {}; it must be at least 0", n));
  // ceil without n + batch_size - 1, which overflows for a batch_size near INT64_MAX.
  return drop_last || n == 0 ? n / batch_size : (n - 1) / batch_size + 1;
}

namespace detail {

void check_batches(const Tensor& images, const Tensor& labels, std::int64_t batch_size) {
  if (!images.defined() || !labels.defined())
    throw Error(fmt::format("weft::io::batches: the {} tensor is empty (default-constructed); pass the loaded data",
                            images.defined() ? "labels" : "images"));
  if (images.rank() == 0 || labels.rank() == 0)
    throw ShapeError(fmt::format("weft::io::batches: the {} tensor is a scalar (shape ()); batches take rows along "
                                 "axis 0, so it needs rank >= 1",
                                 images.rank() == 0 ? "images" : "labels"));
  if (images.shape()[0] != labels.shape()[0])
    throw ShapeError(fmt::format("weft::io::batches: images of shape {} have {} rows but labels of shape {} have {}; "
                                 "every image needs one label (were they loaded from the same split?)",
                                 images.shape().str(), images.shape()[0], labels.shape().str(), labels.shape()[0]));
  if (batch_size <= 0)
    throw ValueError(fmt::format("weft::io::batches: batch_size is {}; it must be at least 1", batch_size));
}

Batch epoch_batch(const Epoch& epoch, std::int64_t b) {
  const std::int64_t n = epoch.images.shape()[0], start = b * epoch.batch_size;
  const std::int64_t rows = std::min(epoch.batch_size, n - start);
  const std::int64_t first = start + rows * epoch.shard_index / epoch.shard_count;
  const std::int64_t last = start + rows * (epoch.shard_index + 1) / epoch.shard_count;
  // Rows go through take in both cases: it copies whole rows in parallel (slice_axis walks a
  // [b, 28, 28, 1] block element by element, some 100 times slower).
  const Tensor order = epoch.order.defined() ? slice_axis(epoch.order, 0, first, last)
                                             : arange(first, last, 1, DType::int32);
  return {take(epoch.images, order), take(epoch.labels, order)};
}

}  // namespace detail

Batches batches(Tensor images, Tensor labels, std::int64_t batch_size, std::optional<Key> shuffle_key,
                bool drop_last) {
  detail::check_batches(images, labels, batch_size);
  const std::int64_t n = images.shape()[0];
  Tensor order = shuffle_key ? permutation(*shuffle_key, n) : Tensor();
  return Batches({.images = std::move(images), .labels = std::move(labels), .order = std::move(order),
                  .batch_size = batch_size, .size = num_batches(n, batch_size, drop_last)});
}

}  // namespace weft::io
