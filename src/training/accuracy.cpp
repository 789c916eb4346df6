#include "weft/training/accuracy.hpp"

#include <string>
#include <vector>

#include "weft/error.hpp"
#include "weft/ops.hpp"

namespace weft::training {

namespace {

constexpr const char* kOfLogits = "weft::training::Accuracy::of_logits";

}  // namespace

Accuracy Accuracy::of_logits(const Tensor& logits, const Tensor& labels) {
  if (logits.dtype() != DType::float32 || labels.dtype() != DType::int32)
    throw DTypeError(std::string(kOfLogits) + ": the logits are " + std::string(name(logits.dtype())) +
                     " and the labels " + std::string(name(labels.dtype())) +
                     "; pass float32 logits and int32 class indices");
  const Shape& ls = logits.shape();
  bool fits = logits.rank() >= 1 && labels.rank() == logits.rank() - 1;
  for (int i = 0; fits && i < labels.rank(); ++i) fits = labels.shape()[i] == ls[i];
  if (!fits)
    throw ShapeError(std::string(kOfLogits) + ": the logits are " + ls.str() + " and the labels " +
                     labels.shape().str() + "; the labels must have the logits' shape without the last (class) axis");
  const std::int64_t classes = ls[logits.rank() - 1];
  const std::vector<std::int32_t> truth = labels.to_int_vector();
  for (std::size_t i = 0; i < truth.size(); ++i)
    if (truth[i] < 0 || truth[i] >= classes)
      throw ValueError(std::string(kOfLogits) + ": label " + std::to_string(truth[i]) + " at index " +
                       std::to_string(i) + " is outside [0, " + std::to_string(classes) +
                       ") for logits of " + std::to_string(classes) + " classes");
  if (labels.size() == 0) return {};
  const std::vector<std::int32_t> predicted = argmax(logits, -1).to_int_vector();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i] ? 1 : 0;
  return {correct, labels.size()};
}

Accuracy Accuracy::of_counts(std::int64_t correct, std::int64_t count) {
  if (correct < 0 || count < 0 || correct > count)
    throw ValueError("weft::training::Accuracy::of_counts: " + std::to_string(correct) + " correct of " +
                     std::to_string(count) + " examples; both must be at least 0, and correct at most count");
  return {correct, count};
}

Accuracy Accuracy::merge(const Accuracy& other) const noexcept {
  return {correct_ + other.correct_, count_ + other.count_};
}

double Accuracy::compute() const {
  if (count_ == 0)
    throw ValueError("weft::training::Accuracy::compute: no examples were counted (count 0); merge at least one "
                     "batch before computing, or check empty() first");
  return static_cast<double>(correct_) / static_cast<double>(count_);
}

}  // namespace weft::training
