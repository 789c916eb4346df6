// Padding of window ops (XLA's rules for "SAME" and "VALID") and the shared 2-D window geometry.
#include "window.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <iterator>
#include <string>

#include <fmt/format.h>

#include "../checked.hpp"
#include "weft/error.hpp"

namespace weft {

namespace {

std::string upper(std::string s) {
  std::ranges::transform(s, s.begin(), [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  return s;
}

std::string pairs_str(const std::vector<std::pair<std::int64_t, std::int64_t>>& pairs) {
  std::string s = "(";
  for (std::size_t i = 0; i < pairs.size(); ++i)
    fmt::format_to(std::back_inserter(s), "{}({}, {})", i ? ", " : "", pairs[i].first, pairs[i].second);
  return s + (pairs.size() == 1 ? ",)" : ")");
}

}  // namespace

Padding::Padding(const char* mode) : Padding(std::string(mode ? mode : "")) {}

Padding::Padding(std::string mode) {
  // lax.padtype_to_pads accepts either case.
  const std::string m = upper(mode);
  if (m == "SAME") {
    mode_ = Mode::same;
  } else if (m == "VALID") {
    mode_ = Mode::valid;
  } else {
    throw ValueError(fmt::format("weft::Padding: unknown padding \"{}\"; use \"SAME\", \"VALID\" or explicit (low, "
                                 "high) pairs, one per spatial axis, such as {{{{1, 1}}, {{1, 1}}}}", mode));
  }
}

Padding::Padding(std::vector<std::pair<std::int64_t, std::int64_t>> pairs)
    : mode_(Mode::explicit_pairs), pairs_(std::move(pairs)) {}

Padding::Padding(std::initializer_list<std::pair<std::int64_t, std::int64_t>> pairs)
    : mode_(Mode::explicit_pairs), pairs_(pairs) {}

std::string Padding::str() const {
  switch (mode_) {
    case Mode::same: return "SAME";
    case Mode::valid: return "VALID";
    case Mode::explicit_pairs: break;
  }
  return pairs_str(pairs_);
}

std::vector<std::pair<std::int64_t, std::int64_t>> Padding::resolve(const std::vector<std::int64_t>& in,
                                                                    const std::vector<std::int64_t>& window,
                                                                    const std::vector<std::int64_t>& strides,
                                                                    const std::vector<std::int64_t>& dilation,
                                                                    const char* op) const {
  const std::size_t n = in.size();
  const auto check_count = [&](const std::vector<std::int64_t>& v, const char* what) {
    if (v.size() != n)
      throw ValueError(fmt::format("weft::{}: {} {} has {} entries but the op has {} spatial axes; give one entry per "
                                   "spatial axis",
                                   op, what, detail::extents_str(v), v.size(), n));
    if (std::ranges::any_of(v, [](std::int64_t e) { return e <= 0; }))
      throw ValueError(fmt::format("weft::{}: {} {} must be positive", op, what, detail::extents_str(v)));
  };
  check_count(window, "window");
  check_count(strides, "strides");
  check_count(dilation, "dilation");

  std::vector<std::pair<std::int64_t, std::int64_t>> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t effective = detail::dilated_extent(window[i], dilation[i], op);
    switch (mode_) {
      case Mode::valid: out[i] = {0, 0}; break;
      case Mode::same: {
        // XLA: as many outputs as ceil(in / stride); any odd pad goes on the high side. Written so
        // that no intermediate exceeds in or effective (a stride may be as large as INT64_MAX).
        const std::int64_t outputs = in[i] == 0 ? 0 : (in[i] - 1) / strides[i] + 1;
        const std::int64_t covered = (outputs - 1) * strides[i];  // <= in - 1, or -stride for in = 0
        const std::int64_t total = std::max<std::int64_t>(effective - (in[i] - covered), 0);
        out[i] = {total / 2, total - total / 2};
        break;
      }
      case Mode::explicit_pairs: break;
    }
  }
  if (mode_ == Mode::explicit_pairs) {
    if (pairs_.size() != n)
      throw ValueError(fmt::format("weft::{}: padding {} has {} (low, high) pairs but the op has {} spatial axes; give "
                                   "one pair per spatial axis",
                                   op, pairs_str(pairs_), pairs_.size(), n));
    if (std::ranges::any_of(pairs_, [](const auto& p) { return p.first < 0 || p.second < 0; }))
      throw ValueError(fmt::format("weft::{}: padding {} has a negative pad; pads must be >= 0 (to crop the input, use "
                                   "weft::slice first)",
                                   op, pairs_str(pairs_)));
    out = pairs_;
  }
  return out;
}

namespace detail {

std::int64_t dilated_extent(std::int64_t window, std::int64_t dilation, const char* op) {
  const auto span = checked_mul(window - 1, dilation);
  if (!span || *span == std::numeric_limits<std::int64_t>::max())
    throw ValueError(fmt::format("weft::{}: a window of {} with dilation {} spans more than 2^63 - 1 input positions; "
                                 "use a smaller dilation",
                                 op, window, dilation));
  return *span + 1;
}

Window2d window2d(const Shape& x, std::int64_t kh, std::int64_t kw, const std::vector<std::int64_t>& strides,
                  const Padding& padding, const std::vector<std::int64_t>& dilation, const char* op) {
  const std::vector<std::int64_t> in{x[1], x[2]}, window{kh, kw};
  const auto pads = padding.resolve(in, window, strides, dilation, op);
  Window2d g;
  g.n = x[0];
  g.h = x[1];
  g.w = x[2];
  g.c = x[3];
  g.kh = kh;
  g.kw = kw;
  g.sh = strides[0];
  g.sw = strides[1];
  g.dh = dilation[0];
  g.dw = dilation[1];
  g.pad_h = pads[0].first;
  g.pad_w = pads[1].first;
  const auto padded = [&](std::int64_t extent, const std::pair<std::int64_t, std::int64_t>& pad) {
    const auto low = checked_add(extent, pad.first);
    const auto both = low ? checked_add(*low, pad.second) : std::nullopt;
    if (!both)
      throw ValueError(fmt::format("weft::{}: the padding {} = {} of the input {} gives a padded extent of more than "
                                   "2^63 - 1; use smaller pads",
                                   op, padding.str(), pairs_str(pads), x.str()));
    return *both;
  };
  const std::int64_t padded_h = padded(g.h, pads[0]), padded_w = padded(g.w, pads[1]);
  const std::int64_t eff_h = dilated_extent(kh, g.dh, op), eff_w = dilated_extent(kw, g.dw, op);
  if (eff_h > padded_h || eff_w > padded_w)
    throw ShapeError(fmt::format("weft::{}: the window {}{} is larger than the padded input {} (input {}, padding {} = "
                                 "{}); use a smaller window or dilation, or pad more (\"SAME\" always fits)",
                                 op, extents_str({eff_h, eff_w}),
                                 g.dh > 1 || g.dw > 1 ? fmt::format(" (after dilation {})", extents_str(dilation))
                                                      : std::string(),
                                 extents_str({padded_h, padded_w}), x.str(), padding.str(), pairs_str(pads)));
  g.oh = (padded_h - eff_h) / g.sh + 1;
  g.ow = (padded_w - eff_w) / g.sw + 1;
  if (!checked_product(std::array{g.n, g.oh, g.ow}))  // rows() is then exact
    throw ShapeError(fmt::format("weft::{}: the output of {} x {} x {} pixels (input {}, padding {} = {}) has more "
                                 "than 2^63 - 1 pixels; use smaller pads or larger strides",
                                 op, g.n, g.oh, g.ow, x.str(), padding.str(), pairs_str(pads)));
  return g;
}

}  // namespace detail

}  // namespace weft
