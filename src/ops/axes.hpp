#pragma once
// Internal: axis arguments of reductions and normalisations, checked and normalised.
#include <cstdint>
#include <vector>

#include "weft/ops.hpp"

namespace weft::detail {

/// The sorted, de-duplicated, non-negative axes of `axes` for a tensor of rank `rank`.
std::vector<int> normalize_axes(const Axes& axes, int rank, const char* op);
/// `shape` with `axes` removed, or set to 1 when keepdims.
Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdims);
/// How many elements each output of a mean over normalised `axes` averages; a ValueError naming
/// `op` when there are none.
std::int64_t averaged_count(const Shape& shape, const std::vector<int>& axes, const char* op);
/// `t` (x reduced over `axes`) with the reduced axes kept as extent 1, so that it broadcasts
/// against x (a gradient's shape on the way back).
Tensor keep_axes(const Tensor& t, const Shape& x_shape, const std::vector<int>& axes, bool keepdims);
}  // namespace weft::detail
