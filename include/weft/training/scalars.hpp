#pragma once
// weft::training::Scalars: named values of one step ({"loss", 0.43}, {"accuracy", 0.91}), in the
// order they are shown or written; what the progress bar shows and the metric writers write.
#include <string>
#include <utility>
#include <vector>

namespace weft::training {

using Scalars = std::vector<std::pair<std::string, double>>;

}  // namespace weft::training
