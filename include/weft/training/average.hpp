#pragma once
// weft::training::Average: the mean of a value over batches, as clu.metrics.Average: a total and a
// count, merged by adding both, so that the mean of a whole epoch comes out exact whatever the
// batch sizes, and merging is associative (in any grouping, the same sums).
//
//   training::Average loss;
//   for (const io::Batch& b : batches) loss = loss.merge(training::Average::of_batch(batch_loss, b.size));
//   std::printf("mean loss %.4f\n", loss.compute());
#include <cstdint>

#include "weft/tensor.hpp"

namespace weft::training {

class Average {
 public:
  /// Nothing averaged yet (clu's Average.empty()); merging it changes nothing.
  Average() noexcept = default;

  /// A batch whose mean is `mean` over `count` values (a batch's mean loss and its size). A count
  /// below 1 is a weft::ValueError.
  [[nodiscard]] static Average of_batch(double mean, std::int64_t count = 1);
  /// Every element of a float32 tensor, each counted once (clu's from_model_output). An empty
  /// tensor gives an empty Average; an int32 tensor is a weft::DTypeError.
  [[nodiscard]] static Average of_values(const Tensor& values);

  /// Both together: totals and counts added.
  [[nodiscard]] Average merge(const Average& other) const noexcept;
  /// total / count; an empty Average has no mean and is a weft::ValueError.
  [[nodiscard]] double compute() const;

  [[nodiscard]] double total() const noexcept { return total_; }
  [[nodiscard]] std::int64_t count() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }

 private:
  Average(double total, std::int64_t count) noexcept : total_(total), count_(count) {}
  double total_ = 0;
  std::int64_t count_ = 0;
};

}  // namespace weft::training
