#pragma once
// Helpers shared by the core layer tests (test_core_*.cpp): Flax's path hashes, lecun_normal's
// draw, and a layer run under init then apply.
#include <cmath>
#include <utility>
#include <vector>

#include "testing.hpp"
#include "weft/core.hpp"

namespace weft::testing {

// Python: int.from_bytes(hashlib.sha1(data).digest()[:4], 'big'), the counter appended as its
// minimal big-endian bytes; the values below came from
//   for d in [b'\x01', b'Dense_0\x01', b'Dropout_0\x01', b'query\x01']:
//       print(d, hex(int.from_bytes(hashlib.sha1(d).digest()[:4], 'big')))
inline constexpr std::uint32_t kRootFirst = 0xbf8b4530u;      // sha1(b'\x01'): the root scope's first key
inline constexpr std::uint32_t kDense0First = 0xb2b71315u;    // sha1(b'Dense_0\x01')
inline constexpr std::uint32_t kDropout0First = 0xa1a37726u;  // sha1(b'Dropout_0\x01')
inline constexpr std::uint32_t kQueryFirst = 0x1ebc834fu;     // sha1(b'query\x01')

inline bool same_values(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && a.to_vector() == b.to_vector(); }

// lecun_normal's draw for a kernel whose fan_in is `fan_in`, computed as the initializer does.
inline Tensor lecun_normal_values(Key key, const Shape& shape, double fan_in) {
  const auto variance = static_cast<float>(1.0 / fan_in);
  return truncated_normal(key, -2.0f, 2.0f, shape) * (std::sqrt(variance) / 0.87962566103423978f);
}

// The same layer under init then apply: both outputs (the second must equal the first).
template <class F, class... Args>
std::pair<Tensor, Variables> init_and_check_apply(F f, Key key, const Args&... args) {
  auto [y, variables] = core::init(f)(key, args...);
  const Tensor y2 = core::apply(f)(variables, args...);
  CHECK(same_values(y, y2));
  return {y, variables};
}

// core::dropout in training mode with an explicit key.
inline Tensor drop(float rate, const Tensor& x, Key key, std::vector<int> broadcast_dims = {}) {
  auto f = [&](core::Scope& s, const Tensor& t) {
    return core::dropout(core::DropoutOptions{.rate = rate, .deterministic = false, .broadcast_dims = broadcast_dims},
                         s, t, key);
  };
  return core::apply(f)(Variables{}, x);
}

}  // namespace weft::testing
