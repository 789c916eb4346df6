#include "weft/nn/module.hpp"

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "weft/error.hpp"

namespace weft::nn::detail {

void report_name_in_use(std::string_view name, const std::string& module) {
  throw ValueError(fmt::format("weft::nn: Could not create submodule \"{}\" in module {}: Name in use; give each "
                               "sub-module its own name, or call the same module value (a field, or a named local "
                               "variable) again to share its variables",
                               name, module));
}

}  // namespace weft::nn::detail
