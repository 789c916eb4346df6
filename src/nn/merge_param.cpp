#include "weft/nn/merge_param.hpp"

#include <string>

#include <fmt/format.h>

namespace weft::nn::detail {

void report_merge_error(std::string_view name, MergeProblem problem) {
  const std::string n(name);
  if (problem == MergeProblem::both)
    throw MergeParamError(fmt::format("Parameter \"{}\" was passed to the constructor and at call time. Should be "
                                      "passed just once. (weft::nn::merge_param: either leave the attribute .{} "
                                      "unset, or do not pass {} when calling the module)", n, n, n));
  throw MergeParamError(fmt::format("Parameter \"{}\" must be passed to the constructor or at call time. "
                                    "(weft::nn::merge_param: set the attribute, e.g. {{.{} = ...}}, or "
                                    "pass {} when calling the module)", n, n, n));
}

}  // namespace weft::nn::detail
