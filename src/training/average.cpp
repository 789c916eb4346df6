#include "weft/training/average.hpp"

#include <string>

#include "weft/error.hpp"

namespace weft::training {

Average Average::of_batch(double mean, std::int64_t count) {
  if (count < 1)
    throw ValueError("weft::training::Average::of_batch: the count is " + std::to_string(count) +
                     "; a batch holds at least one value (leave empty batches out, or merge Average{})");
  return {mean * static_cast<double>(count), count};
}

Average Average::of_values(const Tensor& values) {
  if (values.dtype() != DType::float32)
    throw DTypeError("weft::training::Average::of_values: the values are " + std::string(name(values.dtype())) +
                     " " + values.shape().str() + "; pass float32 values (astype them first)");
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
