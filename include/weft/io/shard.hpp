#pragma once
// Sharded input for data parallelism: every rank takes its share of each global batch, from one
// global shuffle, so that the global batch and its order are the same for any number of ranks.
//
//   const io::Shard shard{dist::rank(), dist::size()};
//   for (const io::Batch& b : io::sharded_batches(x, y, 128, fold_in(key, epoch), true, shard))
//     step(b.images, b.labels);   // 128 / size rows: this rank's part of the global batch
#include <cstdint>
#include <optional>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/transform.hpp>

#include "weft/io/batches.hpp"
#include "weft/random.hpp"
#include "weft/tensor.hpp"

namespace weft::io {

/// Shard `index` of `count` (a rank and the number of ranks).
struct Shard {
  int index = 0;
  int count = 1;
};

namespace detail {
/// Throws (naming io::sharded_batches) unless 0 <= index < count and count divides global_batch_size.
void check_shard(Shard shard, std::int64_t global_batch_size);
/// Shard `shard`'s rows [first, last) of the global rows [start, stop): the same split on every rank.
[[nodiscard]] std::pair<std::int64_t, std::int64_t> shard_rows(Shard shard, std::int64_t start, std::int64_t stop);
}  // namespace detail

/// io::batches(images, labels, global_batch_size, shuffle_key, drop_last), each batch cut to the
/// rows of `shard`: rows [i * b / n, (i + 1) * b / n) of a global batch of b rows, for shard i of n.
/// Only those rows are gathered. Every shard must get the same shuffle_key. global_batch_size must
/// be a multiple of shard.count (so that every full batch splits evenly, and the mean of the
/// shards' mean losses is the global batch's), else a ValueError; a last partial batch (drop_last
/// false) is split as evenly as its size allows, some shards getting a row more.
[[nodiscard]] inline auto sharded_batches(Tensor images, Tensor labels, std::int64_t global_batch_size,
                                          std::optional<Key> shuffle_key, bool drop_last, Shard shard) {
  detail::check_batches(images, labels, global_batch_size);
  detail::check_shard(shard, global_batch_size);
  const std::int64_t n = images.shape()[0];
  Tensor order = shuffle_key ? permutation(*shuffle_key, n) : Tensor();
  // range-v3 as in io::batches: clang 14 cannot compile libstdc++ 12's std::views.
  return ranges::views::iota(std::int64_t{0}, num_batches(n, global_batch_size, drop_last)) |
         ranges::views::transform([images = std::move(images), labels = std::move(labels), order = std::move(order),
                                global_batch_size, n, shard](std::int64_t b) {
           const std::int64_t start = b * global_batch_size;
           const auto [first, last] = detail::shard_rows(shard, start, start + std::min(global_batch_size, n - start));
           return detail::gather_batch(images, labels, order, first, last);
         });
}

}  // namespace weft::io
