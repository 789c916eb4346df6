// psum, pmean and broadcast on 1 or more ranks, against values each rank computes itself: every
// rank knows every other rank's leaves (they are a function of the rank), so the expected sums
// are computed locally, in rank order, exactly as the reduction adds them.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "weft/dist.hpp"
#include "weft/ops.hpp"

using namespace weft;

namespace {

// Leaf shapes of every kind: a scalar, empty extents, a vector, a matrix, a rank-3 tensor, and one
// leaf larger than a bucket (16 MiB), which is reduced in two.
const std::vector<std::pair<std::string, Shape>> kFloatLeaves = {
    {"params/a/scalar", Shape{}},         {"params/a/empty", Shape{0}},   {"params/b/vector", Shape{7}},
    {"params/b/matrix", Shape{3, 5}},     {"params/c/cube", Shape{2, 0, 4}}, {"params/c/rank3", Shape{2, 3, 4}},
    {"params/d/large", Shape{4'500'001}},
};

/// Rank r's value of element i: distinct per rank and element, with fractions that round.
float value(int rank, std::int64_t i) {
  return static_cast<float>((i * 7919 + rank * 104729) % 10007) / 97.0f - 40.0f + 0.1f * static_cast<float>(rank);
}
std::int32_t int_value(int rank, std::int64_t i) {
  return static_cast<std::int32_t>(i * 31 - rank * 1'000'003);
}

Variables tree_of(int rank) {
  std::vector<std::pair<std::string, Tensor>> leaves;
  for (const auto& [path, shape] : kFloatLeaves) {
    std::vector<float> v(static_cast<std::size_t>(shape.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = value(rank, static_cast<std::int64_t>(i));
    leaves.emplace_back(path, Tensor(std::move(v), shape));
  }
  std::vector<std::int32_t> counts(6);
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = int_value(rank, static_cast<std::int64_t>(i));
  leaves.emplace_back("state/count", Tensor(std::move(counts), Shape{2, 3}));
  return Variables::from_leaves(std::move(leaves));
}

}  // namespace

TEST_CASE("psum adds every rank's leaves in rank order, and pmean divides by the number of ranks") {
  const int ranks = dist::size();
  const Variables sum = dist::psum(tree_of(dist::rank()));
  const Variables mean = dist::pmean(tree_of(dist::rank()));
  REQUIRE(same_structure(sum, tree_of(0)));
  REQUIRE(same_structure(mean, tree_of(0)));
  for (const auto& [path, shape] : kFloatLeaves) {
    INFO(path);
    const std::vector<float> got = sum.at(path).to_vector(), got_mean = mean.at(path).to_vector();
    REQUIRE(sum.at(path).shape() == shape);
    std::int64_t wrong = 0, wrong_mean = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      float want = value(0, static_cast<std::int64_t>(i));
      for (int r = 1; r < ranks; ++r) want += value(r, static_cast<std::int64_t>(i));
      wrong += got[i] != want;  // bit for bit: the same additions in the same order
      wrong_mean += got_mean[i] != want / static_cast<float>(ranks);
    }
    CHECK(wrong == 0);
    CHECK(wrong_mean == 0);
  }
  const std::vector<std::int32_t> counts = sum.at("state/count").to_int_vector();
  const std::vector<std::int32_t> mean_counts = mean.at("state/count").to_int_vector();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    std::int64_t want = 0;
    for (int r = 0; r < ranks; ++r) want += int_value(r, static_cast<std::int64_t>(i));
    CHECK(counts[i] == want);
    CHECK(mean_counts[i] == want / ranks);  // integer division, toward zero
  }
}

TEST_CASE("psum and pmean of an empty tree are empty, and a psum on every rank's equal tree is bit-identical") {
  CHECK(dist::psum(Variables{}).empty());
  CHECK(dist::pmean(Variables{}).empty());
  const Variables mine = dist::pmean(tree_of(dist::rank()));
  const Variables root = dist::broadcast(mine, 0);
  for (const auto& [path, t] : mine.leaves()) {
    INFO(path);
    if (t.dtype() == DType::float32)
      CHECK(t.to_vector() == root.at(path).to_vector());
    else
      CHECK(t.to_int_vector() == root.at(path).to_int_vector());
  }
}

TEST_CASE("broadcast gives every rank the root's tree, to ranks that pass an empty tree or their own") {
  for (int root : {0, dist::size() - 1}) {
    INFO("root " << root);
    const Variables from_empty = dist::broadcast(dist::rank() == root ? tree_of(root) : Variables{}, root);
    const Variables from_own = dist::broadcast(tree_of(dist::rank()), root);
    for (const Variables* got : {&from_empty, &from_own}) {
      REQUIRE(same_structure(*got, tree_of(root)));
      for (const auto& [path, t] : tree_of(root).leaves()) {
        INFO(path);
        CHECK(got->at(path).shape() == t.shape());
        if (t.dtype() == DType::float32)
          CHECK(got->at(path).to_vector() == t.to_vector());
        else
          CHECK(got->at(path).to_int_vector() == t.to_int_vector());
      }
    }
  }
  CHECK(dist::broadcast(Variables{}, 0).empty());
}

TEST_CASE("trees of another structure on one rank are an error on every rank, naming that rank") {
  if (dist::size() < 2) return;  // one rank cannot disagree with itself
  const Variables mine = dist::rank() == 1 ? Variables::from_leaves({{"params/w", zeros(Shape{3})}})
                                           : Variables::from_leaves({{"params/w", zeros(Shape{4})}});
  for (const char* op : {"psum", "pmean"}) {
    try {
      (void)(std::string(op) == "psum" ? dist::psum(mine) : dist::pmean(mine));
      FAIL("no error");
    } catch (const dist::Error& e) {
      const std::string what = e.what();
      CHECK(what.find(std::string("weft::dist::") + op + ": the trees differ between ranks: rank 1 has") !=
            std::string::npos);
      CHECK(what.find("params/w float32 (") != std::string::npos);
    }
  }
  try {
    (void)dist::broadcast(mine, 0);
    FAIL("no error");
  } catch (const dist::Error& e) {
    CHECK(std::string(e.what()).find("weft::dist::broadcast: rank 1 passed a tree whose structure") !=
          std::string::npos);
  }
  // The job goes on: a mismatch is reported, not fatal.
  CHECK(dist::psum(Variables::from_leaves({{"params/w", ones(Shape{2})}})).at("params/w").to_vector() ==
        std::vector<float>(2, static_cast<float>(dist::size())));
}

TEST_CASE("bad arguments are errors that say what to pass") {
  CHECK_THROWS_WITH_AS((void)dist::broadcast(Variables{}, dist::size()),
                       doctest::Contains("is not a rank; use 0 to"), dist::Error);
  CHECK_THROWS_WITH_AS((void)dist::broadcast(Variables{}, -1), doctest::Contains("root -1 is not a rank"),
                       dist::Error);
  int argc = 0;
  char** argv = nullptr;
  CHECK_THROWS_WITH_AS(dist::init(argc, argv), doctest::Contains("MPI is already initialized"), dist::Error);
  CHECK(dist::initialized());
  CHECK(dist::rank() >= 0);
  CHECK(dist::rank() < dist::size());
  dist::barrier();
}
