// weft::training::Average and Accuracy: closed-form values, merging in any grouping, and the empty
// metric as the identity of merge.
#include <cstdint>
#include <vector>

#include "testing.hpp"
#include "weft/training/accuracy.hpp"
#include "weft/training/average.hpp"

using namespace weft;
using weft::testing::check_throws_with;

TEST_CASE("Average: batches weighted by their counts") {
  // Batch means 1.5 (4 values), 3.0 (2 values), -0.5 (2 values): (6 + 6 - 1) / 8.
  const auto a = training::Average::of_batch(1.5, 4), b = training::Average::of_batch(3.0, 2),
             c = training::Average::of_batch(-0.5, 2);
  const training::Average all = a.merge(b).merge(c);
  CHECK(all.total() == 11.0);
  CHECK(all.count() == 8);
  CHECK(all.compute() == 11.0 / 8.0);
  // Associative and commutative: every grouping gives the same sums.
  const training::Average other = a.merge(b.merge(c)), reversed = c.merge(b).merge(a);
  CHECK(other.total() == all.total());
  CHECK(other.count() == all.count());
  CHECK(reversed.compute() == all.compute());
  // The empty metric changes nothing, on either side.
  const training::Average empty;
  CHECK(empty.empty());
  CHECK(empty.merge(a).total() == a.total());
  CHECK(a.merge(empty).count() == 4);
  CHECK(empty.merge(empty).empty());
  CHECK(training::Average::of_batch(2.5).compute() == 2.5);
}

TEST_CASE("Average::of_values: every element counted once") {
  const auto v = training::Average::of_values(Tensor({1.0f, 2.0f, 4.0f, 9.0f, -1.0f, 0.5f}, Shape{2, 3}));
  CHECK(v.count() == 6);
  CHECK(v.total() == 15.5);
  CHECK(v.merge(training::Average::of_batch(0.5, 2)).compute() == 16.5 / 8.0);
  CHECK(training::Average::of_values(Tensor(std::vector<float>{}, Shape{0})).empty());
}

TEST_CASE("Average: bad input") {
  check_throws_with<ValueError>([] { (void)training::Average::of_batch(1.0, 0); },
                                {"Average::of_batch", "the count is 0", "at least one value"});
  check_throws_with<ValueError>([] { (void)training::Average{}.compute(); },
                                {"Average::compute", "nothing was averaged", "empty()"});
  check_throws_with<DTypeError>([] { (void)training::Average::of_values(Tensor({1, 2}, Shape{2})); },
                                {"Average::of_values", "int32 (2,)", "float32"});
}

TEST_CASE("Accuracy: the argmax of the logits against the labels") {
  // Row by row: argmax 2 (label 2, right), 0 (label 1, wrong), 1 (label 1, right; the first of two
  // equal maxima wins), 0 (label 0, right).
  const Tensor logits({0.1f, 0.2f, 0.7f,    //
                       0.9f, 0.05f, 0.05f,  //
                       0.2f, 0.4f, 0.4f,    //
                       3.0f, -1.0f, 2.0f},
                      Shape{4, 3});
  const auto a = training::Accuracy::of_logits(logits, Tensor({2, 1, 1, 0}, Shape{4}));
  CHECK(a.correct() == 3);
  CHECK(a.count() == 4);
  CHECK(a.compute() == 0.75);
  // A second batch of 2 with 0 right: 3 of 6 in all, in any grouping.
  const auto b = training::Accuracy::of_logits(Tensor({1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f}, Shape{2, 3}),
                                               Tensor({1, 0}, Shape{2}));
  CHECK(b.compute() == 0.0);
  const auto c = training::Accuracy::of_counts(5, 10);
  CHECK(a.merge(b).compute() == 0.5);
  CHECK(a.merge(b).merge(c).correct() == a.merge(b.merge(c)).correct());
  CHECK(a.merge(b).merge(c).count() == 16);
  CHECK(c.merge(a).merge(b).compute() == 8.0 / 16.0);
  CHECK(training::Accuracy{}.merge(a).compute() == 0.75);
  CHECK(a.merge(training::Accuracy{}).count() == 4);
  // Leading batch axes: (2, 2, 3) logits with (2, 2) labels.
  const auto nested = training::Accuracy::of_logits(reshape(logits, {2, 2, 3}), Tensor({2, 1, 1, 0}, Shape{2, 2}));
  CHECK(nested.correct() == 3);
  CHECK(training::Accuracy::of_logits(Tensor(std::vector<float>{}, Shape{0, 3}),
                                      Tensor(std::vector<std::int32_t>{}, Shape{0}))
            .empty());
}

TEST_CASE("Accuracy: bad input") {
  const Tensor logits({0.1f, 0.9f, 0.8f, 0.2f}, Shape{2, 2});
  check_throws_with<ShapeError>([&] { (void)training::Accuracy::of_logits(logits, Tensor({0, 1, 1}, Shape{3})); },
                                {"Accuracy::of_logits", "(2, 2)", "(3,)", "without the last (class) axis"});
  check_throws_with<DTypeError>([&] { (void)training::Accuracy::of_logits(logits, Tensor({0.0f, 1.0f}, Shape{2})); },
                                {"the labels float32", "int32 class indices"});
  check_throws_with<ValueError>([&] { (void)training::Accuracy::of_logits(logits, Tensor({0, 2}, Shape{2})); },
                                {"label 2 at index 1 is outside [0, 2)"});
  check_throws_with<ValueError>([] { (void)training::Accuracy::of_counts(3, 2); }, {"3 correct of 2 examples"});
  check_throws_with<ValueError>([] { (void)training::Accuracy{}.compute(); }, {"Accuracy::compute", "count 0"});
}
