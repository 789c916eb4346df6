#include "weft/io/shard.hpp"

#include <fmt/format.h>

#include "weft/error.hpp"

namespace weft::io::detail {

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

std::pair<std::int64_t, std::int64_t> shard_rows(Shard shard, std::int64_t start, std::int64_t stop) {
  const std::int64_t rows = stop - start;
  return {start + rows * shard.index / shard.count, start + rows * (shard.index + 1) / shard.count};
}

}  // namespace weft::io::detail
