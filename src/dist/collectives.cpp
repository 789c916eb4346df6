#include "weft/dist/collectives.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include "../buffer.hpp"
#include "../tensor_impl.hpp"
#include "comm.hpp"
#include "weft/dist/session.hpp"

namespace weft::dist {

namespace {

using detail::comm;
using detail::Exchange;

/// A tree's structure as text: each leaf's path, dtype and shape, in path order.
std::string structure(const std::vector<std::pair<std::string, Tensor>>& leaves) {
  std::string s;
  for (const auto& [path, t] : leaves) s += fmt::format("{} {} {}\n", path, name(t.dtype()), t.shape().str());
  return s;
}

std::uint32_t crc(std::string_view bytes) {
  return static_cast<std::uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

/// Every rank's tree must have rank 0's structure: otherwise a dist::Error on every rank naming
/// the ranks that differ (each rank compares the same gathered checksums, so all throw together).
void check_same_structure(const std::string& mine, const char* op) {
  const std::vector<std::uint32_t> all = detail::all_gather(crc(mine), op);
  std::vector<int> differ;
  for (std::size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differ.push_back(static_cast<int>(r));
  if (differ.empty()) return;
  throw Error(fmt::format(
      "weft::dist::{}: the trees differ between ranks: rank{} {} {} another structure (paths, dtypes, shapes) than "
      "rank 0's; every rank must pass a tree of the same structure. This rank's ({}) is:\n{}",
      op, differ.size() == 1 ? "" : "s", fmt::join(differ, ", "), differ.size() == 1 ? "has" : "have", comm().rank,
      mine.empty() ? std::string("(empty)\n") : mine));
}

/// Elementwise sum over ranks of `data` (n elements of T), divided by `divisor`, in place on every
/// rank: a reduce-scatter (rank r sums segment r of every rank's data, in rank order, and divides)
/// and an all-gather of the segments.
template <class T>
void sum_in_place(T* data, std::size_t n, int divisor, const char* op) {
  const int ranks = comm().size, me = comm().rank;
  const auto begin = [&](int r) { return n * static_cast<std::size_t>(r) / static_cast<std::size_t>(ranks); };
  const std::size_t mine = begin(me), count = begin(me + 1) - mine;
  // Scratch from the tensor allocator's cache: neither zeroed nor faulted in afresh each step.
  Tensor scratch = weft::detail::empty(Shape{static_cast<std::int64_t>(count * static_cast<std::size_t>(ranks))},
                                       std::is_same_v<T, float> ? DType::float32 : DType::int32);
  T* received = weft::detail::mutable_data<T>(scratch);
  {
    Exchange x(op);
    for (int peer = 0; peer < ranks; ++peer) {
      if (peer == me) continue;
      x.recv(received + count * static_cast<std::size_t>(peer), count * sizeof(T), peer, 1);
      x.send(data + begin(peer), (begin(peer + 1) - begin(peer)) * sizeof(T), peer, 1);
    }
    x.wait();
  }
  // Each element: rank 0's value + rank 1's + ..., in that order, summed rank by rank so that the
  // loops vectorise, into this rank's own segment. A rank past the first two keeps a copy of its
  // own values, which the first pass overwrites.
  T* const own = data + mine;
  if (me >= 2) std::copy_n(own, count, received + count * static_cast<std::size_t>(me));
  const auto part = [&](int r) -> const T* {
    return r == me && me < 2 ? own : received + count * static_cast<std::size_t>(r);
  };
  const auto add = [](T a, T b) {
    if constexpr (std::is_same_v<T, float>)
      return a + b;
    else  // int32 sums wrap, without the undefined behaviour of a signed overflow
      return static_cast<T>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
  };
  for (int r = 1; r < ranks; ++r) {
    const T* const a = r == 1 ? part(0) : own;
    const T* const b = part(r);
    const T d = static_cast<T>(r == ranks - 1 ? divisor : 1);
    if (d == 1)
      for (std::size_t i = 0; i < count; ++i) own[i] = add(a[i], b[i]);
    else  // the last pass divides as well
      for (std::size_t i = 0; i < count; ++i) own[i] = static_cast<T>(add(a[i], b[i]) / d);
  }
  Exchange x(op);
  for (int peer = 0; peer < ranks; ++peer) {
    if (peer == me) continue;
    x.recv(data + begin(peer), (begin(peer + 1) - begin(peer)) * sizeof(T), peer, 2);
    x.send(data + mine, count * sizeof(T), peer, 2);
  }
  x.wait();
}

/// The leaves of one dtype packed into one flat tensor in path order, each at an aligned offset,
/// summed over ranks in buckets of at most kBucketBytes (divided by `divisor`); the leaves are then
/// replaced by views into it (no unpacking copy; they keep the flat tensor alive together).
template <class T>
void reduce_dtype(std::vector<std::pair<std::string, Tensor>>& leaves, DType dtype, int divisor, const char* op) {
  constexpr std::size_t align = weft::detail::kDataAlignment / sizeof(T);
  const auto padded = [](std::size_t n) { return (n + align - 1) / align * align; };
  std::vector<std::size_t> offsets;  // in elements, one per leaf of `dtype`
  std::size_t total = 0;
  for (const auto& [path, t] : leaves) {
    if (t.dtype() != dtype) continue;
    offsets.push_back(total);
    total += padded(static_cast<std::size_t>(t.size()));
  }
  if (total == 0) return;
  Tensor flat = weft::detail::empty(Shape{static_cast<std::int64_t>(total)}, dtype);
  T* const base = weft::detail::mutable_data<T>(flat);
  std::size_t k = 0;
  for (const auto& [path, t] : leaves) {
    if (t.dtype() != dtype) continue;
    const auto n = static_cast<std::size_t>(t.size());
    T* const at = base + offsets[k++];
    std::copy_n(weft::detail::data<T>(t), n, at);
    std::fill(at + n, at + padded(n), T{0});  // the padding sums to zero on every rank
  }
  const std::size_t bucket = kBucketBytes / sizeof(T);
  for (std::size_t start = 0; start < total; start += bucket)
    sum_in_place(base + start, std::min(bucket, total - start), divisor, op);
  k = 0;
  for (auto& [path, t] : leaves)
    if (t.dtype() == dtype) t = weft::detail::view(flat, offsets[k++] * sizeof(T), t.shape());
}

Variables reduce(const Variables& tree, bool mean, const char* op) {
  if (!initialized()) throw Error(fmt::format("weft::dist::{}: MPI is not initialized; call weft::dist::init first", op));
  auto leaves = tree.leaves();
  check_same_structure(structure(leaves), op);
  if (comm().size == 1) return tree;
  const int divisor = mean ? comm().size : 1;
  reduce_dtype<float>(leaves, DType::float32, divisor, op);
  reduce_dtype<std::int32_t>(leaves, DType::int32, divisor, op);
  return leaves.empty() ? Variables() : Variables::from_leaves(std::move(leaves));
}

}  // namespace

Variables psum(const Variables& tree) { return reduce(tree, false, "psum"); }
Variables pmean(const Variables& tree) { return reduce(tree, true, "pmean"); }

Variables broadcast(const Variables& tree, int root) {
  if (!initialized()) throw Error("weft::dist::broadcast: MPI is not initialized; call weft::dist::init first");
  const int ranks = comm().size, me = comm().rank;
  if (root < 0 || root >= ranks)
    throw Error(fmt::format("weft::dist::broadcast: root {} is not a rank; use 0 to {}", root, ranks - 1));
  if (ranks == 1) return tree;
  auto leaves = tree.leaves();
  // Root sends its structure (as JSON: path, dtype, shape of each leaf), then the elements.
  std::string header;
  if (me == root) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& [path, t] : leaves) j.push_back({path, name(t.dtype()), t.shape().to_vector()});
    header = j.dump();
  }
  std::uint64_t header_bytes = header.size();
  {
    Exchange x("broadcast");
    if (me == root) {
      for (int peer = 0; peer < ranks; ++peer)
        if (peer != root) x.send(&header_bytes, sizeof header_bytes, peer, 3);
    } else {
      x.recv(&header_bytes, sizeof header_bytes, root, 3);
    }
    x.wait();
  }
  header.resize(header_bytes);
  {
    Exchange x("broadcast");
    if (me == root) {
      for (int peer = 0; peer < ranks; ++peer)
        if (peer != root) x.send(header.data(), header.size(), peer, 4);
    } else {
      x.recv(header.data(), header.size(), root, 4);
    }
    x.wait();
  }
  std::vector<std::pair<std::string, Tensor>> received;
  if (me != root) {
    for (const auto& leaf : nlohmann::json::parse(header)) {
      const auto dtype_name = leaf[1].get<std::string>();
      received.emplace_back(leaf[0].get<std::string>(),
                            weft::detail::empty(Shape(leaf[2].get<std::vector<std::int64_t>>()),
                                                dtype_name == "int32" ? DType::int32 : DType::float32));
    }
  }
  // A non-root rank that passed a tree must expect root's structure; every rank learns whether all do.
  const bool expected = me == root || leaves.empty() || structure(leaves) == structure(received);
  const std::vector<std::uint32_t> ok = detail::all_gather(expected ? 1 : 0, "broadcast");
  std::vector<int> differ;
  for (int r = 0; r < ranks; ++r)
    if (ok[static_cast<std::size_t>(r)] == 0) differ.push_back(r);
  if (!differ.empty())
    throw Error(fmt::format(
        "weft::dist::broadcast: rank{} {} passed a tree whose structure (paths, dtypes, shapes) is not root {}'s; "
        "pass a tree of root's structure, or an empty Variables to take it from root",
        differ.size() == 1 ? "" : "s", fmt::join(differ, ", "), root));
  Exchange x("broadcast");
  for (auto& [path, t] : me == root ? leaves : received) {
    const std::size_t bytes = weft::detail::byte_size(t.shape(), t.dtype());
    if (bytes == 0) continue;
    if (me == root) {
      for (int peer = 0; peer < ranks; ++peer)
        if (peer != root) x.send(weft::detail::data<char>(t), bytes, peer, 5);
    } else {
      x.recv(weft::detail::mutable_data<char>(t), bytes, root, 5);
    }
  }
  x.wait();
  if (me == root) return tree;
  return received.empty() ? Variables() : Variables::from_leaves(std::move(received));
}

}  // namespace weft::dist
