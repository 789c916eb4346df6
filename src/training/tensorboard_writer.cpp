// TensorBoard event files, the protobuf messages encoded by hand: an Event is at most four fields
// (varints, a fixed64 double, length-delimited strings and messages), which is less code than a
// protobuf dependency.
#include "weft/training/tensorboard_writer.hpp"

#include <unistd.h>

#include <array>
#include <bit>
#include <chrono>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "crc32c.hpp"
#include "output_file.hpp"

namespace weft::training {

namespace {

constexpr const char* kOp = "weft::training::TensorBoardWriter";

// The wire types of the protobuf encoding.
enum class Wire : std::uint8_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_tag(std::string& out, int field, Wire wire) {
  put_varint(out, static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire));
}

template <class Word>
void put_little_endian(std::string& out, Word word) {
  for (std::size_t i = 0; i < sizeof(Word); ++i) out += static_cast<char>((word >> (8 * i)) & 0xFF);
}

void put_double(std::string& out, int field, double value) {
  put_tag(out, field, Wire::fixed64);
  put_little_endian(out, std::bit_cast<std::uint64_t>(value));
}

void put_float(std::string& out, int field, float value) {
  put_tag(out, field, Wire::fixed32);
  put_little_endian(out, std::bit_cast<std::uint32_t>(value));
}

void put_int64(std::string& out, int field, std::int64_t value) {
  put_tag(out, field, Wire::varint);
  put_varint(out, static_cast<std::uint64_t>(value));  // protobuf's int64: two's complement, 10 bytes if negative
}

void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_tag(out, field, Wire::length_delimited);
  put_varint(out, bytes.size());
  out += bytes;
}

// Field numbers of tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto.
namespace event {
constexpr int kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5;
}
namespace summary {
constexpr int kValue = 1;
}
namespace summary_value {
constexpr int kTag = 1, kSimpleValue = 2;
}

/// simple_value is a float32: values beyond its range become infinities, as NumPy's astype rounds
/// them (a plain cast of such a double is undefined behaviour).
float to_float(double value) {
  constexpr double kMax = std::numeric_limits<float>::max();
  if (value > kMax) return std::numeric_limits<float>::infinity();
  if (value < -kMax) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(value);
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
std::string record(std::string_view data) {
  std::string length;
  put_little_endian(length, static_cast<std::uint64_t>(data.size()));
  std::string out = length;
  put_little_endian(out, detail::masked_crc32c(length));
  out += data;
  put_little_endian(out, detail::masked_crc32c(data));
  return out;
}

std::string hostname() {
  std::array<char, 256> name{};
  if (gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "localhost";
  return name.data();
}

detail::OutputFile new_event_file(const std::filesystem::path& log_dir) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  const std::string name = "events.out.tfevents." + std::to_string(seconds) + "." + hostname();
  for (int n = 0;; ++n) {
    auto file = detail::OutputFile::create_new(log_dir / (n == 0 ? name : name + "." + std::to_string(n)), kOp);
    if (file) return std::move(*file);
  }
}

}  // namespace

struct TensorBoardWriter::File {
  detail::OutputFile out;
};

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& log_dir)
    : file_(std::make_unique<File>(File{new_event_file(log_dir)})) {
  std::string first;
  put_double(first, event::kWallTime, wall_time());
  put_bytes(first, event::kFileVersion, "brain.Event:2");
  file_->out.write(record(first));
}

TensorBoardWriter::~TensorBoardWriter() = default;
TensorBoardWriter::TensorBoardWriter(TensorBoardWriter&&) noexcept = default;
TensorBoardWriter& TensorBoardWriter::operator=(TensorBoardWriter&&) noexcept = default;

void TensorBoardWriter::write_scalars(std::int64_t step, const Scalars& scalars) {
  detail::check_scalars(kOp, scalars, /*step_is_reserved=*/false);
  std::string summary;
  for (const auto& [name, value] : scalars) {
    std::string v;
    put_bytes(v, summary_value::kTag, name);
    put_float(v, summary_value::kSimpleValue, to_float(value));
    put_bytes(summary, summary::kValue, v);
  }
  std::string e;
  put_double(e, event::kWallTime, wall_time());
  put_int64(e, event::kStep, step);
  put_bytes(e, event::kSummary, summary);
  file_->out.write(record(e));
}

const std::filesystem::path& TensorBoardWriter::path() const noexcept { return file_->out.path(); }

}  // namespace weft::training
