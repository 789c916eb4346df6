#pragma once
// Internal: how the core layers name the scope they were called in, in error messages.
#include <string>

#include <fmt/format.h>

#include "weft/core/scope.hpp"

namespace weft::core::detail {

/// " (scope \"/Dense_0\")".
inline std::string in_scope(const Scope& scope) { return fmt::format(" (scope \"{}\")", scope.path_str()); }

}  // namespace weft::core::detail
