#pragma once
// weft::Shape: the extents of a tensor, a small value type (rank 0 to kMaxRank). A shape whose
// element count does not fit in int64 cannot be made (ShapeError), so numel() is always exact.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

namespace weft {

class Shape {
 public:
  static constexpr int kMaxRank = 8;

  constexpr Shape() = default;
  /// Throws ShapeError for more than kMaxRank extents, a negative extent, or extents whose product
  /// (of the non-zero ones) overflows int64.
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::span<const std::int64_t> dims);
  explicit Shape(const std::vector<std::int64_t>& dims) : Shape(std::span<const std::int64_t>(dims)) {}

  [[nodiscard]] constexpr int rank() const noexcept { return rank_; }
  [[nodiscard]] constexpr std::int64_t operator[](int axis) const noexcept { return dims_[static_cast<std::size_t>(axis)]; }
  /// Extent of `axis`, which may be negative (counted from the end); throws ShapeError when out of range.
  [[nodiscard]] std::int64_t dim(int axis) const;
  /// Number of elements (1 for rank 0).
  [[nodiscard]] std::int64_t numel() const noexcept;

  [[nodiscard]] const std::int64_t* begin() const noexcept { return dims_.data(); }
  [[nodiscard]] const std::int64_t* end() const noexcept { return dims_.data() + rank_; }
  [[nodiscard]] std::vector<std::int64_t> to_vector() const { return {begin(), end()}; }

  /// A copy with the extent of `axis` replaced.
  [[nodiscard]] Shape with(int axis, std::int64_t extent) const;

  /// "(2, 3)" as NumPy prints shapes; "()" for a scalar.
  [[nodiscard]] std::string str() const;

  friend bool operator==(const Shape& a, const Shape& b) noexcept;

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  std::uint8_t rank_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Shape& s);

/// Normalises a possibly negative axis for a tensor of rank `rank`; throws ShapeError naming `op`.
int normalize_axis(int axis, int rank, const char* op);

}  // namespace weft
