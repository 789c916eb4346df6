// weft::io Flax msgpack files (flax.serialization.to_bytes / from_bytes): round trips, the exact
// bytes of small files, Flax's chunked form, the forms Flax writes that weft does not, and a
// DataError for every kind of broken file.
#include <msgpack.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "../src/io/flax_msgpack_internal.hpp"
#include "checkpoint_testing.hpp"
#include "temp_dir.hpp"
#include "testing.hpp"
#include "weft/io/flax_msgpack.hpp"

using namespace weft;
using namespace weft::testing;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::byte>;

Bytes bytes_of(std::initializer_list<int> values) {
  Bytes out;
  for (const int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}
Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Bytes str(std::string_view s) { return bytes_of({0xa0 | static_cast<int>(s.size())}) + weft::testing::as_bytes(s); }
template <class T>
Bytes raw(const std::vector<T>& values) {
  Bytes out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

/// A msgpack document built with msgpack-cxx's packer.
struct Doc {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk{buffer};
  void key(std::string_view s) { pk.pack(std::string(s)); }
  /// Extension `type` holding (shape, dtype, data), as flax's _ndarray_to_bytes.
  void array(const std::vector<std::int64_t>& shape, const std::string& dtype, const Bytes& data, std::int8_t type = 1) {
    msgpack::sbuffer inner;
    msgpack::packer<msgpack::sbuffer> p(inner);
    p.pack_array(3);
    p.pack(shape);
    p.pack(dtype);
    p.pack_bin(static_cast<std::uint32_t>(data.size()));
    p.pack_bin_body(reinterpret_cast<const char*>(data.data()), static_cast<std::uint32_t>(data.size()));
    pk.pack_ext(inner.size(), type);
    pk.pack_ext_body(inner.data(), static_cast<std::uint32_t>(inner.size()));
  }
  [[nodiscard]] Bytes bytes() const {
    Bytes out(buffer.size());
    std::memcpy(out.data(), buffer.data(), buffer.size());
    return out;
  }
};

/// A document {"params": {"x": <value written by f>}}.
template <class F>
Bytes params_x(F&& f) {
  Doc d;
  d.pk.pack_map(1);
  d.key("params");
  d.pk.pack_map(1);
  d.key("x");
  f(d);
  return d.bytes();
}

void check_bad(const Bytes& bytes, std::initializer_list<std::string> words) {
  std::vector<std::string> all(words);
  all.push_back("weft::io::from_flax_msgpack_bytes: test.msgpack");
  bool thrown = false;
  try {
    (void)io::from_flax_msgpack_bytes(bytes, "test.msgpack");
  } catch (const io::DataError& e) {
    thrown = true;
    for (const auto& w : all) {
      INFO("message: " << std::string(e.what()) << "\nmissing: " << w);
      CHECK(std::string(e.what()).find(w) != std::string::npos);
    }
  }
  CHECK_MESSAGE(thrown, "expected a DataError");
}

}  // namespace

TEST_CASE("flax msgpack: every kind of leaf survives a round trip bit for bit") {
  TempDir dir;
  const Variables v = every_kind_of_leaf();
  io::save_flax_msgpack(dir / "v.msgpack", v);
  check_identical(io::load_flax_msgpack(dir / "v.msgpack"), v);
  const Bytes bytes = io::to_flax_msgpack_bytes(v);
  CHECK(bytes == read_bytes(dir / "v.msgpack"));
  check_identical(io::from_flax_msgpack_bytes(bytes), v);
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}) == 1);
  // An empty tree is the empty map, as flax.serialization.to_bytes({}).
  CHECK(io::to_flax_msgpack_bytes(Variables()) == bytes_of({0x80}));
  CHECK(io::from_flax_msgpack_bytes(bytes_of({0x80})).empty());
}

TEST_CASE("flax msgpack: the bytes of a small tree are to_bytes's, byte for byte") {
  const Variables v = Variables::from_leaves({
      {"params/w", Tensor({1.0f, -2.0f}, Shape{2})},
      {"params/b", Tensor(std::vector<std::int32_t>{7}, Shape{})},
      {"params/s", Tensor(3.5f)},
  });
  // {"params": {"b": ndarray, "s": ndarray, "w": ndarray}}; each ndarray is ext type 1 holding the
  // msgpack of [shape, dtype name, bin]. The 16-byte payload of the float32 scalar is a fixext 16.
  const Bytes b = bytes_of({0x93, 0x90}) + str("int32") + bytes_of({0xc4, 4}) + raw(std::vector<std::int32_t>{7});
  const Bytes s = bytes_of({0x93, 0x90}) + str("float32") + bytes_of({0xc4, 4}) + raw(std::vector<float>{3.5f});
  const Bytes w = bytes_of({0x93, 0x91, 0x02}) + str("float32") + bytes_of({0xc4, 8}) + raw(std::vector<float>{1.0f, -2.0f});
  REQUIRE(b.size() == 14);
  REQUIRE(s.size() == 16);
  REQUIRE(w.size() == 21);
  const Bytes expected = bytes_of({0x81}) + str("params") + bytes_of({0x83}) + str("b") + bytes_of({0xc7, 14, 1}) + b +
                         str("s") + bytes_of({0xd8, 1}) + s + str("w") + bytes_of({0xc7, 21, 1}) + w;
  CHECK(io::to_flax_msgpack_bytes(v) == expected);
  check_identical(io::from_flax_msgpack_bytes(expected), v);
}

TEST_CASE("flax msgpack: arrays above the chunk size are written and read in Flax's chunked form") {
  const Variables v = Variables::from_leaves({
      {"params/big", Tensor({1.f, 2.f, 3.f, 4.f, 5.f}, Shape{5, 1})},
      {"params/small", Tensor({9.f, 8.f}, Shape{2})},
  });
  // 8 bytes per chunk: 2 float32 elements; big (20 bytes) becomes chunks of 2, 2 and 1; small stays.
  const auto chunk = [](const std::vector<float>& values) {
    const Bytes payload = bytes_of({0x93, 0x91, static_cast<int>(values.size())}) + str("float32") +
                          bytes_of({0xc4, static_cast<int>(4 * values.size())}) + raw(values);
    return (payload.size() == 16 ? bytes_of({0xd8, 1}) : bytes_of({0xc7, static_cast<int>(payload.size()), 1})) + payload;
  };
  const Bytes big = bytes_of({0x83}) + str("__msgpack_chunked_array__") + bytes_of({0xc3}) + str("shape") +
                    bytes_of({0x82}) + str("0") + bytes_of({5}) + str("1") + bytes_of({1}) + str("chunks") +
                    bytes_of({0x83}) + str("0") + chunk({1, 2}) + str("1") + chunk({3, 4}) + str("2") + chunk({5});
  const Bytes expected = bytes_of({0x81}) + str("params") + bytes_of({0x82}) + str("big") + big + str("small") + chunk({9, 8});
  const Bytes written = io::detail::flax_msgpack_bytes(v, 8);
  CHECK(written == expected);
  check_identical(io::from_flax_msgpack_bytes(written), v);
  // Chunks hold max(1, max_chunk_bytes / 4) elements: 10 bytes give 2 elements, 3 bytes 1.
  CHECK(io::detail::flax_msgpack_bytes(v, 10) == expected);
  check_identical(io::from_flax_msgpack_bytes(io::detail::flax_msgpack_bytes(v, 3)), v);
  check_identical(io::from_flax_msgpack_bytes(io::detail::flax_msgpack_bytes(every_kind_of_leaf(), 16)), every_kind_of_leaf());
}

TEST_CASE("flax msgpack: NumPy scalars, plain numbers, wider dtypes and empty dicts load as Flax writes them") {
  Doc d;
  d.pk.pack_map(3);
  d.key("opt_state");
  d.pk.pack_map(1);
  d.key("empty");  // optax.EmptyState() becomes {}
  d.pk.pack_map(0);
  d.key("state");
  d.pk.pack_map(5);
  d.key("step");  // a Python int
  d.pk.pack(12345);
  d.key("negative");
  d.pk.pack(-3);
  d.key("loss");  // a Python float
  d.pk.pack(0.25);
  d.key("npscalar");  // np.float32(2.5): extension type 3 holding a 0-d array
  d.array({}, "float32", raw(std::vector<float>{2.5f}), 3);
  d.key("count");
  d.array({}, "int32", raw(std::vector<std::int32_t>{-9}));
  d.key("params");
  d.pk.pack_map(3);
  d.key("half");
  d.array({2}, "float16", raw(std::vector<std::uint16_t>{0x3c00, 0xc000}));
  d.key("brain");
  d.array({1, 1}, "bfloat16", raw(std::vector<std::uint16_t>{0x4049}));
  d.key("double");
  d.array({3}, "float64", raw(std::vector<double>{0.1, -1e300, 4.0}));
  const Variables v = io::from_flax_msgpack_bytes(d.bytes());
  CHECK(v.paths() == std::vector<std::string>{"params/brain", "params/double", "params/half", "state/count", "state/loss",
                                              "state/negative", "state/npscalar", "state/step"});
  CHECK(v.at("state/step").dtype() == DType::int32);
  CHECK(v.at("state/step").shape() == Shape{});
  CHECK(v.at("state/step").to_int_vector() == std::vector<std::int32_t>{12345});
  CHECK(v.at("state/negative").to_int_vector() == std::vector<std::int32_t>{-3});
  CHECK(v.at("state/loss").to_vector() == std::vector<float>{0.25f});
  CHECK(v.at("state/npscalar").to_vector() == std::vector<float>{2.5f});
  CHECK(v.at("state/count").to_int_vector() == std::vector<std::int32_t>{-9});
  CHECK(v.at("params/half").to_vector() == std::vector<float>{1.0f, -2.0f});
  CHECK(v.at("params/brain").shape() == Shape{1, 1});
  CHECK(v.at("params/brain").to_vector() == std::vector<float>{3.140625f});
  CHECK(v.at("params/double").to_vector() == std::vector<float>{0.1f, -INFINITY, 4.0f});
}

TEST_CASE("flax msgpack: every truncation of a valid file is a DataError") {
  const Bytes whole = io::detail::flax_msgpack_bytes(every_kind_of_leaf(), 64);
  for (std::size_t n = 0; n < whole.size(); n += (n < 200 ? 1 : 37)) {
    INFO("first " << n << " bytes");
    const Bytes part(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
    CHECK_THROWS_AS((void)io::from_flax_msgpack_bytes(part), io::DataError);
  }
  check_bad(Bytes(whole.begin(), whole.begin() + 40), {"truncated"});
  check_bad(whole + bytes_of({0xc0}), {"1 bytes after its msgpack object"});
}

TEST_CASE("flax msgpack: broken files are DataErrors that name the file, the path and the fault") {
  const Bytes four = raw(std::vector<float>{1, 2, 3, 4});
  check_bad({}, {"truncated"});
  check_bad(bytes_of({0xc1}), {"not valid msgpack"});
  check_bad(bytes_of({0x93, 1, 2, 3}), {"holds a list", "not the dict of collections"});
  check_bad(bytes_of({0x81, 0x01, 0x80}), {"a dict key is an integer"});
  check_bad(params_x([](Doc& d) { d.pk.pack_array(1); d.pk.pack(1); }), {"at \"params/x\"", "holds a list"});
  check_bad(params_x([](Doc& d) { d.pk.pack_nil(); }), {"at \"params/x\"", "holds nil"});
  check_bad(params_x([](Doc& d) { d.pk.pack(std::string("text")); }), {"at \"params/x\"", "holds a string"});
  check_bad(params_x([&](Doc& d) { d.array({4}, "float32", four, 5); }), {"at \"params/x\"", "extension of type 5", "not an ndarray"});
  check_bad(params_x([&](Doc& d) { d.array({4}, "float32", four, 2); }), {"at \"params/x\"", "complex"});
  check_bad(params_x([&](Doc& d) { d.array({2}, "int64", four); }), {"at \"params/x\"", "dtype \"int64\"", "weft loads float32 and int32"});
  check_bad(params_x([&](Doc& d) { d.array({2, 3}, "float32", four); }), {"at \"params/x\"", "(2, 3)", "6 elements", "16 bytes"});
  check_bad(params_x([&](Doc& d) { d.array({1ll << 40, 1ll << 20}, "float32", four); }),
            {"at \"params/x\"", "needs 1152921504606846976 elements but its data holds 16 bytes"});
  check_bad(params_x([&](Doc& d) { d.array({1ll << 40, 1ll << 40}, "float32", four); }), {"at \"params/x\"", "overflows 64 bits"});
  check_bad(params_x([&](Doc& d) { d.array({-4}, "float32", four); }), {"at \"params/x\"", "-4", "non-negative"});
  check_bad(params_x([&](Doc& d) { d.array({1, 1, 1, 1, 1, 1, 1, 1, 4}, "float32", four); }), {"9 dimensions", "at most 8"});
  check_bad(params_x([](Doc& d) { d.pk.pack(std::int64_t{1} << 40); }), {"at \"params/x\"", "1099511627776", "does not fit int32"});
  check_bad(params_x([](Doc& d) { d.pk.pack_ext(4, 1); d.pk.pack_ext_body("\x93\x90\xc0\xc0", 4); }),
            {"at \"params/x\"", "dtype is nil"});
  check_bad(params_x([](Doc& d) { d.pk.pack_ext(2, 1); d.pk.pack_ext_body("\x91\x90", 2); }),
            {"at \"params/x\"", "instead of (shape, dtype, bytes)"});
  // Huge declared sizes: a list of 2^32 - 1 elements (refused before anything is allocated for it),
  // a bin of 4 GB, an extension of 4 GB.
  check_bad(bytes_of({0x81, 0xa1, 'p', 0xdd, 0xff, 0xff, 0xff, 0xff}), {"not valid msgpack", "array size overflow"});
  check_bad(bytes_of({0x81, 0xa1, 'p', 0xc6, 0xff, 0xff, 0xff, 0xff, 0}), {"truncated"});
  check_bad(bytes_of({0x81, 0xa1, 'p', 0xc9, 0xff, 0xff, 0xff, 0xff, 1, 0}), {"truncated"});
  // Keys weft paths cannot hold, and a leaf directly under a collection.
  check_bad(bytes_of({0x81}) + str("params") + bytes_of({0x81}) + str("a/b") + bytes_of({1}), {"\"a/b\"", "'/'"});
  check_bad(bytes_of({0x81}) + str("params") + bytes_of({1}), {"\"params\"", "cannot represent"});
  // Chunked arrays whose parts disagree.
  check_bad(params_x([](Doc& d) { d.pk.pack_map(1); d.key("__msgpack_chunked_array__"); d.pk.pack(true); }),
            {"at \"params/x\"", "\"shape\" and \"chunks\""});
  const auto chunked = [&](std::int64_t extent, int chunks) {
    return params_x([&](Doc& d) {
      d.pk.pack_map(3);
      d.key("__msgpack_chunked_array__");
      d.pk.pack(true);
      d.key("shape");
      d.pk.pack_map(1);
      d.key("0");
      d.pk.pack(extent);
      d.key("chunks");
      d.pk.pack_map(static_cast<std::uint32_t>(chunks));
      for (int i = 0; i < chunks; ++i) {
        d.key(std::to_string(i));
        d.array({4}, "float32", four);
      }
    });
  };
  check_identical(io::from_flax_msgpack_bytes(chunked(8, 2)),
                  Variables::from_leaves({{"params/x", Tensor({1.f, 2.f, 3.f, 4.f, 1.f, 2.f, 3.f, 4.f}, Shape{8})}}));
  check_bad(chunked(9, 2), {"at \"params/x\"", "the chunks hold 8 elements", "(9,) needs 9"});
  check_bad(chunked(0, 0), {"at \"params/x\"", "the chunks hold 0 elements"});
}
