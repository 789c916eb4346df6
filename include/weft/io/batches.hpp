#pragma once
// Input pipelines: an epoch of (images, labels) batches as a range-v3 view, in file order or
// shuffled by weft::permutation.
//
//   for (int epoch = 0; epoch < epochs; ++epoch)
//     for (const io::Batch& b : io::batches(x, y, 128, fold_in(key, epoch), /*drop_last=*/true))
//       step(b.images, b.labels);
#include <algorithm>
#include <cstdint>
#include <optional>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/transform.hpp>

#include "weft/random.hpp"
#include "weft/tensor.hpp"

namespace weft::io {

/// One batch: rows of the images and the labels that belong to them.
struct Batch {
  Tensor images;  // [b, ...images.shape[1:]]
  Tensor labels;  // [b, ...labels.shape[1:]]
};

/// The number of batches of `batch_size` in `n` examples: ceil(n / batch_size), or
/// floor(n / batch_size) when the last, partial batch is dropped. Throws ValueError when
/// batch_size <= 0 or n < 0.
[[nodiscard]] std::int64_t num_batches(std::int64_t n, std::int64_t batch_size, bool drop_last);

namespace detail {
/// Throws (naming io::batches) unless images and labels are defined, of rank >= 1, with the same
/// number of rows, and batch_size > 0.
void check_batches(const Tensor& images, const Tensor& labels, std::int64_t batch_size);
/// Rows order[start:stop) of images and labels (rows start..stop-1 when `order` is empty).
[[nodiscard]] Batch gather_batch(const Tensor& images, const Tensor& labels, const Tensor& order, std::int64_t start,
                                 std::int64_t stop);
}  // namespace detail

/// The batches of one epoch, as a sized random-access view of io::Batch. Without a key the rows
/// come in their order; with one, in the order permutation(*shuffle_key, n) (use a new key for
/// each epoch, e.g. fold_in(key, epoch)). With drop_last the last batch is dropped when it is
/// smaller than batch_size. Each batch is gathered when its element is read (a copy of its rows),
/// so reading an element twice gathers twice.
[[nodiscard]] inline auto batches(Tensor images, Tensor labels, std::int64_t batch_size,
                                  std::optional<Key> shuffle_key, bool drop_last) {
  detail::check_batches(images, labels, batch_size);
  const std::int64_t n = images.shape()[0];
  Tensor order = shuffle_key ? permutation(*shuffle_key, n) : Tensor();
  return ranges::views::iota(std::int64_t{0}, num_batches(n, batch_size, drop_last)) |
         ranges::views::transform(
             [images = std::move(images), labels = std::move(labels), order = std::move(order), batch_size, n](
                 std::int64_t b) {
               const std::int64_t start = b * batch_size;
               return detail::gather_batch(images, labels, order, start, start + std::min(batch_size, n - start));
             });
}

}  // namespace weft::io
