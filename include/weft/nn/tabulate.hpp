#pragma once
// nn::tabulate: a table of a module's calls (Linen's Module.tabulate).
#include <string>
#include <utility>

#include "weft/nn/module.hpp"

namespace weft::nn {

namespace detail {
/// Formats the rows of `log` with the variables each module path owns, and the totals.
std::string format_table(const CallLog& log, const Variables& variables);
}  // namespace detail

/// Runs `module` as init does and returns a table with one row per module call: path, type, input
/// and output shapes, and the parameter count and bytes per collection of the variables the module
/// owns; a last row gives the totals.
template <class M, class R, class... Args>
  requires core::detail::is_rngs_argument<R>
std::string tabulate(const M& module, const R& rngs, Args&&... args) {
  detail::CallLog log;
  const auto [out, variables] =
      core::init(detail::root_function(module, {.log = &log}), Mutable::all_except({"intermediates"}))(rngs,
                                                                                               std::forward<Args>(args)...);
  return detail::format_table(log, variables);
}

}  // namespace weft::nn
