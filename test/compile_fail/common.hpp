#pragma once
// What the compile-fail snippets share: small records, a layer function, a function object that
// names its record, and module-like aggregates (the real core and nn layers live elsewhere).
#include <cstdint>
#include <optional>
#include <string>

#include "weft/nn/partial.hpp"
#include "weft/partial.hpp"
#include "weft/record.hpp"

struct DropoutOptions {
  float rate = 0.5f;
  std::optional<bool> deterministic{};
};
WEFT_RECORD(DropoutOptions, rate, deterministic);

struct Scope {};

inline float dropout(const DropoutOptions& o, Scope&, float x) {
  return o.deterministic.value_or(false) ? x : x * (1 - o.rate);
}

struct DenseOptions {
  weft::required<std::int64_t> features;
  bool use_bias = true;
};
WEFT_RECORD(DenseOptions, features, use_bias);

struct dense_fn {
  using options_type = DenseOptions;
  std::int64_t operator()(const DenseOptions& o, std::int64_t x) const { return o.features * x + o.use_bias; }
};
inline constexpr dense_fn dense{};

struct Dense {
  weft::required<std::int64_t> features;
  bool use_bias = true;
};
WEFT_RECORD(Dense, features, use_bias);

using namespace weft::literals;
