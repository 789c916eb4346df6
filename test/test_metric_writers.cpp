// weft::training::JsonLinesWriter and TensorBoardWriter: the exact text and bytes they write.
// test/tensorboard_events_test.py reads the event files with TensorFlow's own message definitions.
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "../src/training/crc32c.hpp"
#include "temp_dir.hpp"
#include "testing.hpp"
#include "weft/io/data_error.hpp"
#include "weft/training/json_lines_writer.hpp"
#include "weft/training/tensorboard_writer.hpp"

using namespace weft;
using weft::testing::check_throws_with;
using weft::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::uint64_t little_endian(std::string_view bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) v = v << 8 | static_cast<unsigned char>(bytes[i]);
  return v;
}

/// The records of a TFRecord file, each CRC checked.
std::vector<std::string> records(const std::string& file) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < file.size()) {
    REQUIRE(file.size() - at >= 16);
    const std::string_view length_bytes = std::string_view(file).substr(at, 8);
    const std::uint64_t length = little_endian(length_bytes);
    CHECK(little_endian(std::string_view(file).substr(at + 8, 4)) == training::detail::masked_crc32c(length_bytes));
    REQUIRE(file.size() - at >= 16 + length);
    const std::string data = file.substr(at + 12, length);
    CHECK(little_endian(std::string_view(file).substr(at + 12 + length, 4)) == training::detail::masked_crc32c(data));
    out.push_back(data);
    at += 16 + length;
  }
  return out;
}

std::string float_bytes(float f) {
  const auto bits = std::bit_cast<std::uint32_t>(f);
  return {static_cast<char>(bits & 0xFF), static_cast<char>(bits >> 8 & 0xFF), static_cast<char>(bits >> 16 & 0xFF),
          static_cast<char>(bits >> 24)};
}

}  // namespace

TEST_CASE("crc32c: the known answer of the Castagnoli polynomial") {
  static_assert(training::detail::crc32c("123456789") == 0xE3069283U);
  CHECK(training::detail::crc32c("123456789") == 0xE3069283U);
  CHECK(training::detail::crc32c("") == 0U);
  // RFC 3720 (iSCSI), B.4: 32 bytes of zeros.
  CHECK(training::detail::crc32c(std::string(32, '\0')) == 0x8A9136AAU);
  // The mask: rotate right by 15, add 0xa282ead8.
  const std::uint32_t crc = 0xE3069283U;
  CHECK(training::detail::masked_crc32c("123456789") == ((crc >> 15 | crc << 17) + 0xA282EAD8U));
}

TEST_CASE("JsonLinesWriter: one object per step, appended, keys in the order given") {
  TempDir dir;
  const fs::path path = dir / "logs/metrics.jsonl";  // the directory is created
  {
    training::JsonLinesWriter writer(path);
    CHECK(writer.path() == path);
    writer.write_scalars(0, {{"train_loss", 2.25}, {"lr", 0.001}});
    writer.write_scalars(100, {{"test_accuracy", 0.8816}});
    // Readable at once: each line is flushed.
    CHECK(read_all(path) == "{\"step\":0,\"train_loss\":2.25,\"lr\":0.001}\n{\"step\":100,\"test_accuracy\":0.8816}\n");
  }
  {
    training::JsonLinesWriter again(path);  // a resumed run continues the file
    again.write_scalars(101, {{"train_loss", std::numeric_limits<double>::quiet_NaN()}, {"zeta", -1e300}});
    again.write_scalars(102, {});
  }
  CHECK(read_all(path) ==
        "{\"step\":0,\"train_loss\":2.25,\"lr\":0.001}\n{\"step\":100,\"test_accuracy\":0.8816}\n"
        "{\"step\":101,\"train_loss\":null,\"zeta\":-1e+300}\n{\"step\":102}\n");
}

TEST_CASE("JsonLinesWriter: bad names and unwritable files") {
  TempDir dir;
  training::JsonLinesWriter writer(dir / "m.jsonl");
  check_throws_with<ValueError>([&] { writer.write_scalars(1, {{"step", 1.0}}); },
                                {"JsonLinesWriter", "named \"step\"", "rename it"});
  check_throws_with<ValueError>([&] { writer.write_scalars(1, {{"loss", 1.0}, {"loss", 2.0}}); },
                                {"the scalar \"loss\" is given twice"});
  check_throws_with<ValueError>([&] { writer.write_scalars(1, {{"", 1.0}}); }, {"an empty name"});
  CHECK(read_all(dir / "m.jsonl").empty());
  std::ofstream(dir / "file") << "x";
  check_throws_with<io::DataError>([&] { training::JsonLinesWriter(dir / "file/m.jsonl"); },
                                   {"JsonLinesWriter", "file/m.jsonl", "cannot create the directory"});
}

TEST_CASE("TensorBoardWriter: TFRecord framing, the file_version event, then one event per step") {
  TempDir dir;
  const fs::path path = [&] {
    training::TensorBoardWriter writer(dir / "run");
    writer.write_scalars(7, {{"train/loss", 0.5}, {"acc", 0.1}});
    writer.write_scalars(300, {{"big", 1e300}});
    return writer.path();
  }();
  CHECK(path.parent_path() == dir / "run");
  const std::string name = path.filename().string();
  REQUIRE(name.starts_with("events.out.tfevents."));
  const auto seconds = std::stoll(name.substr(20, name.find('.', 20) - 20));
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(std::llabs(now - seconds) < 60);

  const std::vector<std::string> events = records(read_all(path));
  REQUIRE(events.size() == 3);
  // Event{wall_time (field 1, fixed64), file_version (field 3) = "brain.Event:2"}.
  CHECK(events[0].size() == 9 + 15);
  CHECK(events[0][0] == '\x09');
  const double wall = std::bit_cast<double>(little_endian(std::string_view(events[0]).substr(1, 8)));
  CHECK(std::fabs(wall - static_cast<double>(now)) < 60.0);
  CHECK(events[0].substr(9) == std::string("\x1a\x0d") + "brain.Event:2");
  // Event{wall_time, step (field 2) = 7, summary (field 5) = Summary{value (field 1) =
  // Value{tag (field 1), simple_value (field 2, fixed32)} for each scalar}}.
  const std::string loss = std::string("\x0a\x0a") + "train/loss" + "\x15" + float_bytes(0.5f);
  const std::string acc = std::string("\x0a\x03") + "acc" + "\x15" + float_bytes(0.1f);
  const std::string summary = std::string("\x0a") + static_cast<char>(loss.size()) + loss + "\x0a" +
                              static_cast<char>(acc.size()) + acc;
  CHECK(events[1][0] == '\x09');
  CHECK(events[1].substr(9) == std::string("\x10\x07\x2a") + static_cast<char>(summary.size()) + summary);
  // Step 300 is the two-byte varint ac 02; 1e300 is beyond float32 and becomes +inf.
  const std::string big = std::string("\x0a\x03") + "big" + "\x15" + float_bytes(std::numeric_limits<float>::infinity());
  CHECK(events[2].substr(9) == std::string("\x10\xac\x02\x2a") + static_cast<char>(big.size() + 2) + "\x0a" +
                                   static_cast<char>(big.size()) + big);
}

TEST_CASE("TensorBoardWriter: two writers of the same second get two files; bad names") {
  TempDir dir;
  training::TensorBoardWriter a(dir.path()), b(dir.path());
  CHECK(a.path() != b.path());
  CHECK(fs::exists(a.path()));
  CHECK(fs::exists(b.path()));
  check_throws_with<ValueError>([&] { a.write_scalars(1, {{"x", 1.0}, {"x", 1.0}}); },
                                {"TensorBoardWriter", "\"x\" is given twice"});
  CHECK(records(read_all(a.path())).size() == 1);
  std::ofstream(dir / "file") << "x";
  check_throws_with<io::DataError>([&] { training::TensorBoardWriter(dir / "file"); },
                                   {"TensorBoardWriter", "file"});
}
