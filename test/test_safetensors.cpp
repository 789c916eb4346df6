// weft::io safetensors files and io::restore: round trips, the exact bytes of a small file, dtype
// conversion on load, and a clear DataError for every kind of broken file.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "checkpoint_testing.hpp"
#include "temp_dir.hpp"
#include "testing.hpp"
#include "weft/io/restore.hpp"
#include "weft/io/safetensors.hpp"

using namespace weft;
using namespace weft::testing;
namespace fs = std::filesystem;

namespace {

/// A safetensors file from its header text and data bytes (header length as given, unpadded).
std::vector<std::byte> safetensors_file(const std::string& header, const std::vector<std::byte>& data = {}) {
  std::vector<std::byte> out(8);
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  const auto h = weft::testing::as_bytes(header);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <class T>
std::vector<std::byte> raw(const std::vector<T>& values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

/// Loads `file` (written to disk) and checks the DataError names the file and says every word.
void check_bad_file(const TempDir& dir, const std::vector<std::byte>& file, std::initializer_list<std::string> words) {
  const fs::path path = dir / "bad.safetensors";
  write_bytes(path, file);
  std::vector<std::string> all(words);
  all.push_back("weft::io::load_safetensors: " + path.string());
  bool thrown = false;
  try {
    (void)io::load_safetensors(path);
  } catch (const io::DataError& e) {
    thrown = true;
    for (const auto& w : all) {
      INFO("message: " << std::string(e.what()) << "\nmissing: " << w);
      CHECK(std::string(e.what()).find(w) != std::string::npos);
    }
  }
  CHECK_MESSAGE(thrown, "expected a DataError");
  // The in-memory reader gives the same verdict.
  CHECK_THROWS_AS((void)io::from_safetensors_bytes(file), io::DataError);
}

}  // namespace

TEST_CASE("safetensors: every kind of leaf and the metadata survive a round trip bit for bit") {
  TempDir dir;
  const Variables v = every_kind_of_leaf();
  const io::SafetensorsMetadata metadata{{"format", "weft"}, {"epoch", "3"}, {"note", "ünïcode \"quoted\""}};
  io::save_safetensors(dir / "v.safetensors", v, metadata);
  check_identical(io::load_safetensors(dir / "v.safetensors"), v);
  CHECK(io::load_safetensors_metadata(dir / "v.safetensors") == metadata);
  // The bytes in memory are the file's bytes, and read back the same.
  const auto bytes = io::to_safetensors_bytes(v, metadata);
  CHECK(bytes == read_bytes(dir / "v.safetensors"));
  check_identical(io::from_safetensors_bytes(bytes), v);
  // The data section starts 8-byte aligned.
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  CHECK(header_length % 8 == 0);
  // No temporary file is left beside it.
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}) == 1);
}

TEST_CASE("safetensors: the bytes of a small file are the format's, byte for byte") {
  const Variables v = Variables::from_leaves({
      {"params/w", Tensor({1.0f, -2.0f}, Shape{2})},
      {"params/b", Tensor(std::vector<std::int32_t>{7}, Shape{})},
  });
  // nlohmann::json writes keys sorted and compact; the header is padded with spaces to 8 bytes.
  std::string header =
      R"({"params/b":{"data_offsets":[0,4],"dtype":"I32","shape":[]},)"
      R"("params/w":{"data_offsets":[4,12],"dtype":"F32","shape":[2]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<std::byte> data = raw(std::vector<std::int32_t>{7});
  const auto w = raw(std::vector<float>{1.0f, -2.0f});
  data.insert(data.end(), w.begin(), w.end());
  CHECK(io::to_safetensors_bytes(v) == safetensors_file(header, data));
}

TEST_CASE("safetensors: an empty tree is a file with the header {} and loads as an empty tree") {
  TempDir dir;
  io::save_safetensors(dir / "empty.safetensors", Variables());
  CHECK(read_bytes(dir / "empty.safetensors") == safetensors_file("{}      "));
  CHECK(io::load_safetensors(dir / "empty.safetensors").empty());
  CHECK(io::load_safetensors_metadata(dir / "empty.safetensors").empty());
}

TEST_CASE("safetensors: a save replaces the previous file as a whole") {
  TempDir dir;
  const fs::path path = dir / "v.safetensors";
  io::save_safetensors(path, every_kind_of_leaf());
  const Variables small = Variables::from_leaves({{"params/x", Tensor({5.0f}, Shape{1})}});
  io::save_safetensors(path, small);
  check_identical(io::load_safetensors(path), small);
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}) == 1);
  check_throws_with<io::DataError>([&] { io::save_safetensors(dir / "no-such-dir" / "v.safetensors", small); },
                                   {"weft::io::save_safetensors", "no-such-dir", "create the directory first"});
}

TEST_CASE("safetensors: F16, BF16 and F64 load converted to float32") {
  TempDir dir;
  const std::vector<std::uint16_t> f16{0x3c00, 0xc000, 0x7bff, 0x0001, 0x8400, 0x7c00, 0xfc00, 0x0000, 0x8000};
  const std::vector<float> f16_values{1.0f, -2.0f, 65504.0f, 0x1p-24f, -0x1p-14f, INFINITY, -INFINITY, 0.0f, -0.0f};
  const std::vector<std::uint16_t> bf16{0x3f80, 0x4049, 0xc2f7, 0x0001};
  const std::vector<float> bf16_values{1.0f, 3.140625f, -123.5f, std::bit_cast<float>(0x00010000u)};
  const double flt_max = std::numeric_limits<float>::max();
  const std::vector<double> f64{1.0 / 3.0, -2.5, 1e300, -1e300, flt_max, 1e-50};
  const std::vector<float> f64_values{1.0f / 3.0f, -2.5f, INFINITY, -INFINITY, std::numeric_limits<float>::max(), 0.0f};
  std::vector<std::byte> data = raw(f16);
  for (const auto& part : {raw(bf16), raw(f64), raw(std::vector<std::uint16_t>{0x7e00})}) data.insert(data.end(), part.begin(), part.end());
  const std::string header =
      R"({"params/half":{"dtype":"F16","shape":[3,3],"data_offsets":[0,18]},)"
      R"("params/brain":{"dtype":"BF16","shape":[4],"data_offsets":[18,26]},)"
      R"("params/double":{"dtype":"F64","shape":[2,3],"data_offsets":[26,74]},)"
      R"("params/nan":{"dtype":"F16","shape":[],"data_offsets":[74,76]}})";
  write_bytes(dir / "wide.safetensors", safetensors_file(header, data));
  const Variables v = io::load_safetensors(dir / "wide.safetensors");
  CHECK(v.at("params/half").dtype() == DType::float32);
  CHECK(v.at("params/half").shape() == Shape{3, 3});
  const auto bits = [](const std::vector<float>& xs) {
    std::vector<std::uint32_t> out;
    for (const float x : xs) out.push_back(std::bit_cast<std::uint32_t>(x));
    return out;
  };
  CHECK(bits(v.at("params/half").to_vector()) == bits(f16_values));  // -0.0 and the signs of infinities too
  CHECK(bits(v.at("params/brain").to_vector()) == bits(bf16_values));
  CHECK(v.at("params/double").shape() == Shape{2, 3});
  CHECK(bits(v.at("params/double").to_vector()) == bits(f64_values));
  CHECK(std::isnan(v.at("params/nan").item()));
}

TEST_CASE("safetensors: a converted tensor larger than the conversion chunk loads whole") {
  TempDir dir;
  const std::int64_t n = 300'000;  // 2.4 MB of F64: three chunks
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i) * 0.5 - 7.0;
  const std::string header = R"({"params/x":{"dtype":"F64","shape":[)" + std::to_string(n) + R"(],"data_offsets":[0,)" +
                             std::to_string(n * 8) + "]}}";
  write_bytes(dir / "big.safetensors", safetensors_file(header, raw(values)));
  const auto loaded = io::load_safetensors(dir / "big.safetensors").at("params/x").to_vector();
  REQUIRE(loaded.size() == values.size());
  for (std::size_t i = 0; i < values.size(); i += 997) CHECK(loaded[i] == static_cast<float>(values[i]));
  CHECK(loaded.back() == static_cast<float>(values.back()));
}

TEST_CASE("safetensors: broken files are DataErrors that name the file, the tensor and the fault") {
  TempDir dir;
  const auto four = raw(std::vector<float>{1, 2, 3, 4});
  const auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
  };
  const auto file = [&](const std::string& entries, const std::vector<std::byte>& data) {
    return safetensors_file("{" + entries + "}", data);
  };
  SUBCASE("shorter than the length prefix") { check_bad_file(dir, weft::testing::as_bytes("abc"), {"truncated", "3 bytes"}); }
  SUBCASE("an empty file") { check_bad_file(dir, {}, {"truncated", "0 bytes"}); }
  SUBCASE("header length beyond the file") {
    auto f = file(entry("params/x", "F32", "[4]", "[0,16]"), four);
    f.resize(40);
    check_bad_file(dir, f, {"declares a header of", "truncated"});
  }
  SUBCASE("huge header length") {
    auto f = safetensors_file("{}");
    const std::uint64_t huge = 1ull << 62;
    std::memcpy(f.data(), &huge, 8);
    check_bad_file(dir, f, {"declares a header of 4611686018427387904 bytes"});
  }
  SUBCASE("header not JSON") { check_bad_file(dir, safetensors_file("{\"params/x\": [1, 2"), {"not valid JSON"}); }
  SUBCASE("header not an object") { check_bad_file(dir, safetensors_file("[1, 2]"), {"does not start with '{'"}); }
  SUBCASE("unknown dtype") {
    check_bad_file(dir, file(entry("params/x", "Q7", "[4]", "[0,16]"), four), {"\"params/x\"", "dtype \"Q7\"", "weft loads F32 and I32"});
  }
  SUBCASE("dtype weft does not load") {
    check_bad_file(dir, file(entry("params/x", "I64", "[2]", "[0,16]"), four), {"\"params/x\"", "dtype \"I64\""});
  }
  SUBCASE("offsets beyond the data") {
    check_bad_file(dir, file(entry("params/x", "F32", "[5]", "[0,20]"), four), {"\"params/x\"", "[0, 20]", "beyond the 16 bytes"});
  }
  SUBCASE("offsets that end before they begin") {
    check_bad_file(dir, file(entry("params/x", "F32", "[0]", "[8,4]"), four), {"\"params/x\"", "end before they begin"});
  }
  SUBCASE("overlapping tensors") {
    check_bad_file(dir, file(entry("params/a", "F32", "[3]", "[0,12]") + "," + entry("params/b", "F32", "[2]", "[8,16]"), four),
                   {"\"params/b\"", "overlap", "\"params/a\""});
  }
  SUBCASE("a gap between tensors") {
    check_bad_file(dir, file(entry("params/a", "F32", "[1]", "[0,4]") + "," + entry("params/b", "F32", "[2]", "[8,16]"), four),
                   {"\"params/b\"", "gap"});
  }
  SUBCASE("bytes after the last tensor") {
    check_bad_file(dir, file(entry("params/a", "F32", "[3]", "[0,12]"), four), {"ends at byte 12", "16 bytes of data"});
  }
  SUBCASE("shape size disagrees with the byte range") {
    check_bad_file(dir, file(entry("params/x", "F32", "[2,3]", "[0,16]"), four), {"\"params/x\"", "6 F32 elements (24 bytes)", "hold 16 bytes"});
  }
  SUBCASE("a shape whose size overflows") {
    check_bad_file(dir, file(entry("params/x", "F32", "[4294967296,4294967296,4294967296]", "[0,16]"), four),
                   {"\"params/x\"", "overflows 64 bits"});
  }
  SUBCASE("a huge shape that fits 64 bits") {
    check_bad_file(dir, file(entry("params/x", "F32", "[1099511627776,1024]", "[0,16]"), four),
                   {"\"params/x\"", "1125899906842624 F32 elements", "hold 16 bytes"});
  }
  SUBCASE("a negative extent") {
    check_bad_file(dir, file(entry("params/x", "F32", "[-4]", "[0,16]"), four), {"\"params/x\"", "-4", "non-negative integer"});
  }
  SUBCASE("a fractional offset") {
    check_bad_file(dir, file(entry("params/x", "F32", "[4]", "[0,16.5]"), four), {"\"params/x\"", "16.5"});
  }
  SUBCASE("too many dimensions") {
    check_bad_file(dir, file(entry("params/x", "F32", "[1,1,1,1,1,1,1,1,4]", "[0,16]"), four), {"\"params/x\"", "9 dimensions", "at most 8"});
  }
  SUBCASE("a field missing") {
    check_bad_file(dir, file("\"params/x\":{\"dtype\":\"F32\",\"shape\":[4]}", four), {"\"params/x\"", "no \"data_offsets\""});
  }
  SUBCASE("a name that is not a weft path") {
    check_bad_file(dir, file(entry("weight", "F32", "[4]", "[0,16]"), four), {"not a weft path", "\"weight\""});
  }
  SUBCASE("metadata that is not strings") {
    check_bad_file(dir, file("\"__metadata__\":{\"epoch\":3}," + entry("params/x", "F32", "[4]", "[0,16]"), four),
                   {"\"epoch\"", "must be strings"});
  }
}

TEST_CASE("safetensors: a missing file or a directory is a DataError naming it") {
  TempDir dir;
  check_throws_with<io::DataError>([&] { (void)io::load_safetensors(dir / "nope.safetensors"); },
                                   {"weft::io::load_safetensors", "nope.safetensors", "no such file"});
  check_throws_with<io::DataError>([&] { (void)io::load_safetensors(dir.path()); }, {"is a directory"});
}

TEST_CASE("restore: gives the loaded tree when it fits the target, else names every difference at once") {
  const Variables target = Variables::from_leaves({
      {"params/Dense_0/kernel", zeros({3, 4})},
      {"params/Dense_0/bias", zeros({4})},
      {"batch_stats/BatchNorm_0/mean", zeros({4})},
      {"counters/step", zeros({}, DType::int32)},
  });
  const Variables good = tree_map([](const Tensor& t) { return t.dtype() == DType::float32 ? ones(t.shape()) : t; }, target);
  check_identical(io::restore(target, good), good);
  const Variables bad = Variables::from_leaves({
      {"params/Dense_0/kernel", zeros({4, 3})},
      {"params/Dense_0/bias", zeros({4})},
      {"params/Dense_9/bias", zeros({4})},
      {"counters/step", zeros({}, DType::float32)},
  });
  check_throws_with<io::DataError>(
      [&] { (void)io::restore(target, bad); },
      {"weft::io::restore", "missing from the loaded variables: \"batch_stats/BatchNorm_0/mean\"",
       "not in the target: \"params/Dense_9/bias\"",
       "\"params/Dense_0/kernel\" has shape (3, 4) in the target vs (4, 3) loaded",
       "\"counters/step\" has dtype int32 in the target vs float32 loaded"});
  check_identical(io::restore(Variables(), Variables()), Variables());
}
