// libFuzzer target: the input (after its first byte) is an IDX file that is gzip-compressed here,
// so the fuzzer explores headers and bodies behind a valid gzip stream; the first byte then
// damages the stream the way files get damaged: its trailer cut, bytes appended after it, a
// second member, or one compressed byte changed.
#include <zlib.h>

#include <vector>

#include "fuzz_idx.hpp"

namespace {

std::vector<std::uint8_t> gzip(std::span<const std::uint8_t> in) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<std::uint8_t> out(deflateBound(&z, static_cast<uLong>(in.size())) + 32);
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::span<const std::uint8_t> idx(data + 1, size - 1);
  std::vector<std::uint8_t> gz = gzip(idx);
  const std::size_t amount = mode >> 3;  // 0 to 31
  switch (mode & 7) {
    case 0: break;                                                       // intact
    case 1: gz.resize(gz.size() - std::min<std::size_t>(amount % 9, gz.size())); break;  // trailer cut
    case 2: gz.insert(gz.end(), idx.begin(), idx.begin() + std::min(amount, idx.size())); break;  // garbage after
    case 3: {                                                            // the data split into two members
      const std::size_t cut = idx.empty() ? 0 : amount % (idx.size() + 1);
      gz = gzip(idx.first(cut));
      const auto second = gzip(idx.subspan(cut));
      gz.insert(gz.end(), second.begin(), second.end());
      break;
    }
    default:                                                             // one byte changed
      if (!gz.empty()) gz[(amount * 7919 + mode) % gz.size()] ^= static_cast<std::uint8_t>(mode | 1);
  }
  weft::fuzz::read_all_ways(gz);
  return 0;
}
