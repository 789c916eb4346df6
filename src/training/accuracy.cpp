#include "weft/training/accuracy.hpp"

#include <string>
#include <vector>

#include <fmt/format.h>

#include "weft/error.hpp"
#include "weft/ops.hpp"

namespace weft::training {

namespace {

constexpr const char* kOfLogits = "weft::training::Accuracy::of_logits";

}  // namespace

Accuracy Accuracy::of_logits(const Tensor& logits, const Tensor& labels) {
  if (logits.dtype() != DType::float32 || labels.dtype() != DType::int32)
    throw DTypeError(fmt::format("{}: the logits are {} and the labels {}; pass float32 logits and int32 class indices",
                                 kOfLogits, name(logits.dtype()), name(labels.dtype())));
  const Shape& ls = logits.shape();
  bool fits = logits.rank() >= 1 && labels.rank() == logits.rank() - 1;
  for (int i = 0; fits && i < labels.rank(); ++i) fits = labels.shape()[i] == ls[i];
  if (!fits)
    throw ShapeError(fmt::format("{}: the logits are {} and the labels {}; the labels must have the "
                                 "logits' shape without the last (class) axis",
                                 kOfLogits, ls.str(), labels.shape().str()));
  const std::int64_t classes = ls[logits.rank() - 1];
  const std::vector<std::int32_t> truth = labels.to_int_vector();
  for (std::size_t i = 0; i < truth.size(); ++i)
    if (truth[i] < 0 || truth[i] >= classes)
      throw ValueError(fmt::format("{}: label {} at index {} is outside [0, {}) for logits of {} classes",
                                   kOfLogits, truth[i], i, classes, classes));
  if (labels.size() == 0) return {};
  const std::vector<std::int32_t> predicted = argmax(logits, -1).to_int_vector();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i] ? 1 : 0;
  return {correct, labels.size()};
}

Accuracy Accuracy::of_counts(std::int64_t correct, std::int64_t count) {
  if (correct < 0 || count < 0 || correct > count)
    throw ValueError(fmt::format("weft::training::Accuracy::of_counts: {} correct of {} examples; both "
                                 "must be at least 0, and correct at most count", correct, count));
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
