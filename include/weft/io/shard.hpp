#pragma once
// Sharded input for data parallelism: every rank takes its share of each global batch, from one
// global shuffle, so that the global batch and its order are the same for any number of ranks.
//
//   const io::Shard shard{dist::rank(), dist::size()};
//   for (const io::Batch& b : io::sharded_batches(x, y, 128, fold_in(key, epoch), true, shard))
//     step(b.images, b.labels);   // 128 / size rows: this rank's part of the global batch
#include <cstdint>
#include <optional>

#include "weft/io/batches.hpp"
#include "weft/random.hpp"
#include "weft/tensor.hpp"

namespace weft::io {

/// Shard `index` of `count` (a rank and the number of ranks).
struct Shard {
  int index = 0;
  int count = 1;
};

/// io::batches(images, labels, global_batch_size, shuffle_key, drop_last), each batch cut to the
/// rows of `shard`: rows [i * b / n, (i + 1) * b / n) of a global batch of b rows, for shard i of n.
/// Only those rows are gathered. Every shard must get the same shuffle_key. global_batch_size must
/// be a multiple of shard.count (so that every full batch splits evenly, and the mean of the
/// shards' mean losses is the global batch's), else a ValueError; a last partial batch (drop_last
/// false) is split as evenly as its size allows, some shards getting a row more.
[[nodiscard]] Batches sharded_batches(Tensor images, Tensor labels, std::int64_t global_batch_size,
                                      std::optional<Key> shuffle_key, bool drop_last, Shard shard);

}  // namespace weft::io
