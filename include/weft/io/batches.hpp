#pragma once
// Input pipelines: an epoch of (images, labels) batches, in file order or shuffled by
// weft::permutation.
//
//   for (int epoch = 0; epoch < epochs; ++epoch)
//     for (const io::Batch& b : io::batches(x, y, 128, fold_in(key, epoch), /*drop_last=*/true))
//       step(b.images, b.labels);
#include <compare>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>

#include "weft/random.hpp"
#include "weft/tensor.hpp"

namespace weft::io {

/// One batch: rows of the images and the labels that belong to them.
struct Batch {
  Tensor images;  // [b, ...images.shape[1:]]
  Tensor labels;  // [b, ...labels.shape[1:]]
};

/// The number of batches of `batch_size` in `n` examples: ceil(n / batch_size), or
/// floor(n / batch_size) when the last, partial batch is dropped. Throws ValueError when
/// batch_size <= 0 or n < 0.
[[nodiscard]] std::int64_t num_batches(std::int64_t n, std::int64_t batch_size, bool drop_last);

namespace detail {
/// What the batches of an epoch are cut from: shared by the range and its iterators, so that an
/// iterator never dangles (the range is a borrowed range).
struct Epoch {
  Tensor images, labels;
  Tensor order;  // the rows' order: permutation(key, n), or empty for the file order
  std::int64_t batch_size = 1;
  std::int64_t size = 0;  // the number of batches
  int shard_index = 0;    // rows [i * b / n, (i + 1) * b / n) of each global batch of b rows
  int shard_count = 1;
};
/// Throws (naming io::batches) unless images and labels are defined, of rank >= 1, with the same
/// number of rows, and batch_size > 0.
void check_batches(const Tensor& images, const Tensor& labels, std::int64_t batch_size);
/// Batch `b` of `epoch` (its shard's rows only), gathered.
[[nodiscard]] Batch epoch_batch(const Epoch& epoch, std::int64_t b);
}  // namespace detail

/// The batches of one epoch: a sized random-access range of io::Batch. Each batch is gathered
/// when its element is read (a copy of its rows), so reading an element twice gathers twice.
/// Written out rather than composed from std::views (which clang 14 cannot compile with libstdc++
/// 12) or range-v3 (whose views would weigh on every user's build); std::ranges and range-v3 take
/// it as any range (bind it to a name first to pipe it into a range-v3 view).
class Batches {
 public:
  class iterator {
   public:
    using iterator_concept = std::random_access_iterator_tag;
    using iterator_category = std::input_iterator_tag;  // elements are values, not references
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    Batch operator*() const { return detail::epoch_batch(*epoch_, b_); }
    Batch operator[](difference_type n) const { return detail::epoch_batch(*epoch_, b_ + n); }
    iterator& operator++() { return ++b_, *this; }
    iterator operator++(int) { return {epoch_, b_++}; }
    iterator& operator--() { return --b_, *this; }
    iterator operator--(int) { return {epoch_, b_--}; }
    iterator& operator+=(difference_type n) { return b_ += n, *this; }
    iterator& operator-=(difference_type n) { return b_ -= n, *this; }
    friend iterator operator+(iterator it, difference_type n) { return it += n; }
    friend iterator operator+(difference_type n, iterator it) { return it += n; }
    friend iterator operator-(iterator it, difference_type n) { return it -= n; }
    friend difference_type operator-(const iterator& a, const iterator& b) { return a.b_ - b.b_; }
    friend bool operator==(const iterator& a, const iterator& b) { return a.b_ == b.b_; }
    friend std::strong_ordering operator<=>(const iterator& a, const iterator& b) { return a.b_ <=> b.b_; }

   private:
    friend class Batches;
    iterator(std::shared_ptr<const detail::Epoch> epoch, std::int64_t b) : epoch_(std::move(epoch)), b_(b) {}
    std::shared_ptr<const detail::Epoch> epoch_;
    std::int64_t b_ = 0;
  };

  explicit Batches(detail::Epoch epoch) : epoch_(std::make_shared<const detail::Epoch>(std::move(epoch))) {}

  [[nodiscard]] iterator begin() const { return {epoch_, 0}; }
  [[nodiscard]] iterator end() const { return {epoch_, epoch_->size}; }
  [[nodiscard]] std::int64_t size() const noexcept { return epoch_->size; }
  [[nodiscard]] bool empty() const noexcept { return epoch_->size == 0; }
  [[nodiscard]] Batch operator[](std::int64_t b) const { return detail::epoch_batch(*epoch_, b); }

 private:
  std::shared_ptr<const detail::Epoch> epoch_;
};

/// The batches of one epoch. Without a key the rows come in their order; with one, in the order
/// permutation(*shuffle_key, n) (use a new key for each epoch, e.g. fold_in(key, epoch)). With
/// drop_last the last batch is dropped when it is smaller than batch_size.
[[nodiscard]] Batches batches(Tensor images, Tensor labels, std::int64_t batch_size, std::optional<Key> shuffle_key,
                              bool drop_last);

}  // namespace weft::io

// Iterators share the epoch, so they outlive the range: std::views may take it as an rvalue.
// (Hidden from the API reference: a specialisation of std's trait.)
/// \cond
template <>
inline constexpr bool std::ranges::enable_borrowed_range<weft::io::Batches> = true;
/// \endcond
