#pragma once
// weft::training::Accuracy: the share of correct predictions over batches, as clu.metrics.Accuracy:
// the correct answers and the examples are counted, merged by adding both, and divided at the end,
// so that an epoch's accuracy is exact whatever the batch sizes.
//
//   training::Accuracy accuracy;
//   for (const io::Batch& b : test_batches)
//     accuracy = accuracy.merge(training::Accuracy::of_logits(nn::apply(model, variables, b.images), b.labels));
//   std::printf("test accuracy %.4f\n", accuracy.compute());
#include <cstdint>

#include "weft/tensor.hpp"

namespace weft::training {

class Accuracy {
 public:
  /// No examples yet; merging it changes nothing.
  Accuracy() noexcept = default;

  /// The examples whose highest logit (the first of equal ones, as jnp.argmax) is at their label.
  /// logits are float32 (..., classes), labels int32 of logits' shape without the last axis, each in
  /// [0, classes). Other dtypes are a weft::DTypeError, other shapes a weft::ShapeError, a label
  /// out of range a weft::ValueError naming it.
  [[nodiscard]] static Accuracy of_logits(const Tensor& logits, const Tensor& labels);
  /// `correct` of `count` examples (counted elsewhere, for example summed over ranks). Negative
  /// numbers or correct > count are a weft::ValueError.
  [[nodiscard]] static Accuracy of_counts(std::int64_t correct, std::int64_t count);

  /// Both together: correct answers and examples added.
  [[nodiscard]] Accuracy merge(const Accuracy& other) const noexcept;
  /// correct / count; an empty Accuracy has no value and is a weft::ValueError.
  [[nodiscard]] double compute() const;

  [[nodiscard]] std::int64_t correct() const noexcept { return correct_; }
  [[nodiscard]] std::int64_t count() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }

 private:
  Accuracy(std::int64_t correct, std::int64_t count) noexcept : correct_(correct), count_(count) {}
  std::int64_t correct_ = 0, count_ = 0;
};

}  // namespace weft::training
