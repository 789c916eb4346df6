#include "weft/shape.hpp"

#include <ostream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "checked.hpp"
#include "format.hpp"
#include "weft/error.hpp"

namespace weft {

namespace {
[[noreturn]] void throw_rank(std::size_t rank) {
  throw ShapeError(fmt::format("weft::Shape: rank {} is more than the supported {} dimensions; reshape the data to "
                               "fewer axes",
                               rank, Shape::kMaxRank));
}
}  // namespace

Shape::Shape(std::initializer_list<std::int64_t> dims) : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const std::int64_t> dims) {
  if (dims.size() > static_cast<std::size_t>(kMaxRank)) throw_rank(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) {
      std::ostringstream msg;
      msg << "weft::Shape: extent " << dims[i] << " at axis " << i << " is negative; extents are >= 0";
      throw ShapeError(msg.str());
    }
    dims_[i] = dims[i];
  }
  // numel() and every stride of the shape are then exact: kernels multiply extents unchecked.
  if (!detail::checked_product(dims))
    throw ShapeError(fmt::format("weft::Shape: the extents {} hold more than 2^63 - 1 elements (their "
                                 "product overflows int64); no tensor can have this shape", detail::extents_str(dims)));
  rank_ = static_cast<std::uint8_t>(dims.size());
}

std::int64_t Shape::dim(int axis) const { return (*this)[normalize_axis(axis, rank_, "Shape::dim")]; }

std::int64_t Shape::numel() const noexcept {
  return *detail::checked_product(std::span<const std::int64_t>(begin(), end()));  // checked at construction
}

Shape Shape::with(int axis, std::int64_t extent) const {
  auto dims = to_vector();
  dims[static_cast<std::size_t>(normalize_axis(axis, rank_, "Shape::with"))] = extent;
  return Shape(dims);
}

std::string Shape::str() const {
  return fmt::format("({}{})", fmt::join(begin(), end(), ", "), rank_ == 1 ? "," : "");
}

bool operator==(const Shape& a, const Shape& b) noexcept {
  if (a.rank_ != b.rank_) return false;
  for (int i = 0; i < a.rank_; ++i)
    if (a.dims_[static_cast<std::size_t>(i)] != b.dims_[static_cast<std::size_t>(i)]) return false;
  return true;
}

std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

int normalize_axis(int axis, int rank, const char* op) {
  const int r = rank;
  if (axis < -r || axis >= r) {
    std::ostringstream msg;
    msg << "weft::" << op << ": axis " << axis << " is out of range for a tensor of rank " << rank
        << "; use an axis in [" << -r << ", " << r - 1 << "]";
    throw ShapeError(msg.str());
  }
  return axis < 0 ? axis + r : axis;
}

}  // namespace weft
