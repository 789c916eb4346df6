#pragma once
// Helpers of the checkpoint tests: a tree with every kind of leaf, exact comparison of trees, and
// raw file access for building broken files.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "weft/io/checkpoint_manager.hpp"
#include "weft/ops.hpp"
#include "weft/variables.hpp"

namespace weft::testing {

/// Distinct values, negative and fractional ones included: element i of leaf `salt`.
inline std::vector<float> distinct_values(std::int64_t n, int salt) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(salt) * 1.25f - static_cast<float>(i) * 0.375f + 0.1f;
  return v;
}

/// Every kind of leaf a checkpoint must keep: params and batch_stats as Linen makes them, an int32
/// collection, a 0-d tensor, an empty tensor, a rank-8 tensor and a long, deep path.
inline Variables every_kind_of_leaf() {
  std::string deep = "params";
  for (int i = 0; i < 24; ++i) deep += "/Block_" + std::to_string(i);
  deep += "/" + std::string(200, 'w');
  return Variables::from_leaves({
      {"params/Dense_0/kernel", Tensor(distinct_values(12, 1), Shape{3, 4})},
      {"params/Dense_0/bias", Tensor(distinct_values(4, 2), Shape{4})},
      {"params/Dense_1/kernel", Tensor(distinct_values(8, 3), Shape{4, 2})},
      {"batch_stats/BatchNorm_0/mean", Tensor(distinct_values(4, 4), Shape{4})},
      {"batch_stats/BatchNorm_0/var", Tensor(distinct_values(4, 5), Shape{4})},
      {"counters/step", Tensor(std::vector<std::int32_t>{-7, 0, 2147483647}, Shape{3})},
      {"state/scalar", Tensor(3.5f)},
      {"state/int_scalar", Tensor(std::vector<std::int32_t>{42}, Shape{})},
      {"state/empty", Tensor(std::vector<float>{}, Shape{0, 3})},
      {"state/rank8", Tensor(distinct_values(256, 6), Shape{2, 2, 2, 2, 2, 2, 2, 2})},
      {deep, Tensor(distinct_values(2, 7), Shape{2})},
  });
}

/// The same paths, and at each the same dtype, shape and bits.
inline void check_identical(const Variables& actual, const Variables& expected) {
  REQUIRE(actual.paths() == expected.paths());
  for (const auto& [path, e] : expected.leaves()) {
    INFO("leaf " << path);
    const Tensor& a = actual.at(path);
    REQUIRE(a.dtype() == e.dtype());
    REQUIRE(a.shape() == e.shape());
    if (e.dtype() == DType::float32) {
      const auto av = a.values<float>(), ev = e.values<float>();
      CHECK(std::memcmp(av.data(), ev.data(), av.size_bytes()) == 0);
    } else {
      CHECK(a.to_int_vector() == e.to_int_vector());
    }
  }
}

/// The checkpoint of the kill test for `step`: 1 MiB of float32 and an int32 leaf, all equal to the
/// step, and the step in the metadata, so that a loaded checkpoint shows whether it is whole.
inline io::Checkpoint kill_test_checkpoint(std::int64_t step) {
  const auto s = static_cast<std::int32_t>(step);
  return {Variables::from_leaves({{"params/big", full({512, 512}, static_cast<float>(s))},
                                  {"state/step", full({3}, s)}}),
          {{"step", std::to_string(step)}}};
}

/// Checks that a loaded kill-test checkpoint is whole (every value its step) and returns the step.
inline std::int64_t check_kill_test_checkpoint(const Variables& v, std::int64_t step) {
  REQUIRE(v.paths() == std::vector<std::string>{"params/big", "state/step"});
  const auto big = v.at("params/big").to_vector();
  REQUIRE(big.size() == 512u * 512u);
  CHECK(std::ranges::all_of(big, [&](float x) { return x == static_cast<float>(step); }));
  CHECK(v.at("state/step").to_int_vector() == std::vector<std::int32_t>(3, static_cast<std::int32_t>(step)));
  return step;
}

inline std::vector<std::byte> read_bytes(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> chars(std::istreambuf_iterator<char>(f), {});
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

inline std::vector<std::byte> as_bytes(std::string_view s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

}  // namespace weft::testing
