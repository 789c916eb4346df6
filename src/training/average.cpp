#include "weft/training/average.hpp"

#include <string>

#include <fmt/format.h>

#include "weft/error.hpp"

namespace weft::training {

Average Average::of_batch(double mean, std::int64_t count) {
  if (count < 1)
    throw ValueError(fmt::format("weft::training::Average::of_batch: the count is {}; a batch holds at least "
                                 "one value (leave empty batches out, or merge Average{{}})", count));
  return {mean * static_cast<double>(count), count};
}

Average Average::of_values(const Tensor& values) {
  if (values.dtype() != DType::float32)
    throw DTypeError(fmt::format("weft::training::Average::of_values: the values are {} {}; "
                                 "pass float32 values (astype them first)",
                                 name(values.dtype()), values.shape().str()));
  double total = 0;  // in double: a long epoch's sum of float32 losses keeps its digits
  for (const float v : values.values<float>()) total += v;
  return {total, values.size()};
}

Average Average::merge(const Average& other) const noexcept {
  return {total_ + other.total_, count_ + other.count_};
}

double Average::compute() const {
  if (count_ == 0)
    throw ValueError("weft::training::Average::compute: nothing was averaged (count 0); merge at least one batch "
                     "before computing, or check empty() first");
  return total_ / static_cast<double>(count_);
}

}  // namespace weft::training
