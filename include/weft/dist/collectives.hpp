#pragma once
// Collectives over trees (jax.lax.psum, pmean), and broadcast, for data-parallel training:
//
//   auto [loss, grads] = value_and_grad(loss_fn)(params, shard.images, shard.labels);
//   grads = weft::dist::pmean(grads);   // every rank now holds the mean over all ranks' batches
//
// Every rank must call the same collectives in the same order with trees of the same structure
// (paths, shapes and dtypes); a mismatch is a dist::Error on every rank. The leaves are packed into
// a few flat buckets per dtype, each reduced by a reduce-scatter and an all-gather, and each
// element is summed by one rank in rank order, so the result is bit-identical on every rank and
// from run to run (MPI's own allreduce promises neither).
#include <cstddef>

#include "weft/error.hpp"
#include "weft/variables.hpp"

namespace weft::dist {

/// A collective or init/finalize called wrongly (trees that differ between ranks, init twice).
class Error : public weft::Error {
 public:
  using weft::Error::Error;
};

/// A collective that did not complete within InitOptions::timeout: a rank died or hangs. The
/// message names the ranks that never answered. Afterwards MPI cannot be used (finalize aborts).
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// The sum over ranks, leaf by leaf, of every rank's `tree` (float32 and int32 leaves; int32 sums
/// wrap on overflow, as XLA's).
[[nodiscard]] Variables psum(const Variables& tree);
/// The mean over ranks: psum / size(). An int32 leaf is divided as an integer, rounding toward zero
/// (the step counts of optimizer states are equal on every rank, so their mean is exact).
[[nodiscard]] Variables pmean(const Variables& tree);
/// Rank `root`'s tree on every rank. Only root's tree is read; the others give the structure they
/// expect, which must match root's (an empty Variables on a non-root rank takes root's structure).
[[nodiscard]] Variables broadcast(const Variables& tree, int root = 0);

/// The largest bucket psum and pmean build, in bytes (a leaf larger than it is its own bucket).
inline constexpr std::size_t kBucketBytes = std::size_t{16} << 20;

}  // namespace weft::dist
