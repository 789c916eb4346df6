#include "weft/io/shard.hpp"

#include <utility>

#include <fmt/format.h>

#include "weft/error.hpp"

namespace weft::io {

namespace {


/// Throws (naming io::sharded_batches) unless 0 <= index < count and count divides global_batch_size.
void check_shard(Shard shard, std::int64_t global_batch_size) {
  if (shard.count < 1)
    throw ValueError(fmt::format("weft::io::sharded_batches: the number of shards is {}; it must be at least 1",
                                 shard.count));
  if (shard.index < 0 || shard.index >= shard.count)
    throw ValueError(fmt::format("weft::io::sharded_batches: shard {} of {} does not exist; the index runs from 0 to {}",
                                 shard.index, shard.count, shard.count - 1));
  if (global_batch_size % shard.count != 0)
    throw ValueError(fmt::format(
        "weft::io::sharded_batches: the global batch of {} rows does not split evenly into {} shards; use a global "
        "batch size that is a multiple of {} (e.g. {})",
        global_batch_size, shard.count, shard.count, (global_batch_size / shard.count + 1) * shard.count));
}

}  // namespace

Batches sharded_batches(Tensor images, Tensor labels, std::int64_t global_batch_size, std::optional<Key> shuffle_key,
                        bool drop_last, Shard shard) {
  detail::check_batches(images, labels, global_batch_size);
  check_shard(shard, global_batch_size);
  const std::int64_t n = images.shape()[0];
  Tensor order = shuffle_key ? permutation(*shuffle_key, n) : Tensor();
  return Batches({.images = std::move(images), .labels = std::move(labels), .order = std::move(order),
                  .batch_size = global_batch_size, .size = num_batches(n, global_batch_size, drop_last),
                  .shard_index = shard.index, .shard_count = shard.count});
}

}  // namespace weft::io
