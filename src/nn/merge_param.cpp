#include "weft/nn/merge_param.hpp"

#include <string>

namespace weft::nn::detail {

void report_merge_error(std::string_view name, MergeProblem problem) {
  const std::string n(name);
  if (problem == MergeProblem::both)
    throw MergeParamError("Parameter \"" + n + "\" was passed to the constructor and at call time. Should be passed "
                          "just once. (weft::nn::merge_param: either leave the attribute ." + n +
                          " unset, or do not pass " + n + " when calling the module)");
  throw MergeParamError("Parameter \"" + n + "\" must be passed to the constructor or at call time. (weft::nn::"
                        "merge_param: set the attribute, e.g. {." + n + " = ...}, or pass " + n +
                        " when calling the module)");
}

}  // namespace weft::nn::detail
