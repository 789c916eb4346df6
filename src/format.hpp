#pragma once
// Internal: the small text helpers that error messages across weft share.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace weft::detail {

/// "\"text\"": a name or path as messages quote it.
inline std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

/// "(3, 3)", "(2,)", "()": extents written as a shape is.
inline std::string extents_str(std::span<const std::int64_t> v) {
  return fmt::format("({}{})", fmt::join(v, ", "), v.size() == 1 ? "," : "");
}
inline std::string extents_str(std::initializer_list<std::int64_t> v) {
  return extents_str(std::span<const std::int64_t>(v.begin(), v.size()));
}

}  // namespace weft::detail
