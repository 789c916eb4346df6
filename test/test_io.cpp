// weft::io: IDX files (raw and gzip), Fashion-MNIST, and the batching pipeline. The tests write
// their own small IDX files, good and broken, into a temporary directory.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <ranges>
#include <string>
#include <vector>

#include <range/v3/range/conversion.hpp>
#include <range/v3/range/operations.hpp>
#include <range/v3/range/primitives.hpp>
#include <range/v3/view/join.hpp>
#include <range/v3/view/transform.hpp>

#include "temp_dir.hpp"
#include "testing.hpp"
#include "weft/io/batches.hpp"
#include "weft/io/shard.hpp"
#include "weft/io/fashion_mnist.hpp"
#include "weft/io/idx.hpp"
#include "weft/ops.hpp"
#include "weft/random.hpp"

using namespace weft;
using weft::testing::check_throws_with;
using weft::testing::TempDir;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

void put_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

/// The bytes of an IDX file: magic 0x0000TTNN, big-endian extents, then `data`.
Bytes idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const Bytes& data) {
  Bytes out{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (const auto d : dims) put_be32(out, d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void write_raw(const fs::path& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

void write_gz(const fs::path& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  // gzwrite takes an unsigned count; write in pieces to stay well inside it.
  for (std::size_t at = 0; at < bytes.size(); at += 1 << 20) {
    const auto n = static_cast<unsigned>(std::min<std::size_t>(bytes.size() - at, 1 << 20));
    CHECK(gzwrite(f, bytes.data() + at, n) == static_cast<int>(n));
  }
  REQUIRE(gzclose(f) == Z_OK);
}

Bytes read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

/// n images of rows x cols bytes: byte k of the file body is (k * 37 + 11) mod 256, so every
/// value from 0 to 255 occurs once the body has 256 bytes.
Bytes image_body(std::int64_t n, std::int64_t rows, std::int64_t cols) {
  Bytes body(static_cast<std::size_t>(n * rows * cols));
  for (std::size_t k = 0; k < body.size(); ++k) body[k] = static_cast<std::uint8_t>((k * 37 + 11) % 256);
  return body;
}

Bytes images_file(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  return idx_bytes(0x08, {n, rows, cols}, image_body(n, rows, cols));
}

Bytes labels_file(const Bytes& labels) { return idx_bytes(0x08, {static_cast<std::uint32_t>(labels.size())}, labels); }

/// byte / 255 in float, the value the reader must give (division is correctly rounded).
std::vector<float> scaled(const Bytes& body) {
  std::vector<float> v(body.size());
  for (std::size_t i = 0; i < body.size(); ++i) v[i] = static_cast<float>(body[i]) / 255.0f;
  return v;
}

}  // namespace

// ---------------------------------------------------------------- IDX reading

TEST_CASE("io: read_idx_images reads raw and gzip files as float32 [n, rows, cols, 1] scaled by 1/255") {
  TempDir dir;
  const Bytes body = image_body(3, 10, 9);  // 270 bytes: every value 0..255 occurs
  const Bytes file = idx_bytes(0x08, {3, 10, 9}, body);
  write_raw(dir / "images-idx3-ubyte", file);
  write_gz(dir / "images-idx3-ubyte.gz", file);
  write_gz(dir / "compressed-without-suffix", file);  // detected by the gzip magic, not the name
  for (const char* name : {"images-idx3-ubyte", "images-idx3-ubyte.gz", "compressed-without-suffix"}) {
    INFO(std::string(name));
    const Tensor x = io::read_idx_images(dir / name);
    CHECK(x.dtype() == DType::float32);
    CHECK(x.shape() == Shape{3, 10, 9, 1});
    CHECK(x.to_vector() == scaled(body));  // exact
  }
  // The ends of the range are exact, and one value by hand: 37 * 0 + 11 = 11 at position 0.
  const auto v = io::read_idx_images(dir / "images-idx3-ubyte.gz").to_vector();
  const auto pos = [&](std::uint8_t b) { return std::find(body.begin(), body.end(), b) - body.begin(); };
  CHECK(v[static_cast<std::size_t>(pos(0))] == 0.0f);
  CHECK(v[static_cast<std::size_t>(pos(255))] == 1.0f);
  CHECK(v[0] == 11.0f / 255.0f);
}

TEST_CASE("io: read_idx_images streams files larger than one chunk") {
  TempDir dir;
  const Bytes body = image_body(1500, 28, 28);  // 1.18 MB, more than the reader's 1 MiB chunk
  write_gz(dir / "big.gz", idx_bytes(0x08, {1500, 28, 28}, body));
  write_raw(dir / "big", idx_bytes(0x08, {1500, 28, 28}, body));
  for (const char* name : {"big.gz", "big"}) {
    const Tensor x = io::read_idx_images(dir / name);
    CHECK(x.shape() == Shape{1500, 28, 28, 1});
    CHECK(x.to_vector() == scaled(body));
  }
}

TEST_CASE("io: read_idx_labels reads int32 [n]; read_idx gives raw bytes and extents") {
  TempDir dir;
  const Bytes labels{9, 0, 3, 3, 7, 255};
  write_raw(dir / "labels", labels_file(labels));
  write_gz(dir / "labels.gz", labels_file(labels));
  for (const char* name : {"labels", "labels.gz"}) {
    const Tensor y = io::read_idx_labels(dir / name);
    CHECK(y.dtype() == DType::int32);
    CHECK(y.shape() == Shape{6});
    CHECK(y.to_int_vector() == std::vector<std::int32_t>{9, 0, 3, 3, 7, 255});
  }
  // Any rank, including the 2-D and empty cases.
  write_gz(dir / "matrix.gz", idx_bytes(0x08, {2, 3}, {1, 2, 3, 4, 5, 6}));
  const io::IdxData m = io::read_idx(dir / "matrix.gz");
  CHECK(m.dims == std::vector<std::int64_t>{2, 3});
  CHECK(m.bytes == Bytes{1, 2, 3, 4, 5, 6});
  write_raw(dir / "empty", idx_bytes(0x08, {0, 28, 28}, {}));
  CHECK(io::read_idx(dir / "empty").bytes.empty());
  CHECK(io::read_idx_images(dir / "empty").shape() == Shape{0, 28, 28, 1});
  CHECK(io::read_idx(dir / "labels").dims == std::vector<std::int64_t>{6});
}

TEST_CASE("io: read_idx_pair checks that images and labels counts agree") {
  TempDir dir;
  write_gz(dir / "images.gz", images_file(4, 2, 2));
  write_gz(dir / "labels.gz", labels_file({1, 2, 3, 4}));
  write_gz(dir / "labels5.gz", labels_file({1, 2, 3, 4, 5}));
  const io::LabeledImages pair = io::read_idx_pair(dir / "images.gz", dir / "labels.gz");
  CHECK(pair.images.shape() == Shape{4, 2, 2, 1});
  CHECK(pair.labels.to_int_vector() == std::vector<std::int32_t>{1, 2, 3, 4});
  check_throws_with<io::DataError>([&] { (void)io::read_idx_pair(dir / "images.gz", dir / "labels5.gz"); },
                                   {"images.gz", "labels5.gz", "4 images", "5 labels", "same split"});
}

TEST_CASE("io: IDX errors name the file, what is wrong and the fix") {
  TempDir dir;
  const Bytes good = images_file(2, 3, 3);

  SUBCASE("missing file or a directory") {
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "nope.gz"); },
                                     {"read_idx_images", "nope.gz", "no such file"});
    check_throws_with<io::DataError>([&] { (void)io::read_idx_labels(dir.path()); }, {"is a directory"});
    CHECK_THROWS_AS((void)io::read_idx(dir / "nope"), weft::Error);  // DataError is a weft::Error
  }
  SUBCASE("truncated header") {
    write_raw(dir / "short", {0, 0, 8});
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "short"); },
                                     {"short", "truncated", "3 bytes", "magic number"});
    Bytes cut(good.begin(), good.begin() + 10);  // magic and 1.5 of 3 extents
    write_gz(dir / "cut-dims.gz", cut);
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "cut-dims.gz"); },
                                     {"cut-dims.gz", "truncated", "3 dimensions", "after 6"});
    write_raw(dir / "empty-file", {});
    check_throws_with<io::DataError>([&] { (void)io::read_idx_labels(dir / "empty-file"); },
                                     {"empty-file", "truncated", "0 bytes"});
  }
  SUBCASE("truncated data, raw and gzip") {
    const Bytes cut(good.begin(), good.end() - 5);
    write_raw(dir / "cut", cut);
    write_gz(dir / "cut.gz", cut);
    for (const char* name : {"cut", "cut.gz"}) {
      INFO(std::string(name));
      check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / name); },
                                       {name, "truncated", "2 x 3 x 3 = 18 bytes", "ends after 13 bytes of data", "again"});
    }
    // A gzip file cut in the middle of its compressed stream.
    write_gz(dir / "whole.gz", images_file(50, 28, 28));
    const Bytes gz = read_file(dir / "whole.gz");
    write_raw(dir / "halved.gz", Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "halved.gz"); },
                                     {"halved.gz", "truncated", "gzip stream breaks off", "unexpected end of file"});
    // A header that claims far more than the file can hold fails before anything is allocated.
    write_gz(dir / "huge.gz", idx_bytes(0x08, {60000000, 28, 28}, {1, 2, 3}));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "huge.gz"); },
                                     {"huge.gz", "truncated or corrupt", "60000000 x 28 x 28"});
  }
  SUBCASE("extents whose product overflows, even beside a zero") {
    // Found by fuzz-idx-raw: no tensor can have such a shape, so the header is rejected first.
    write_raw(dir / "overflow", idx_bytes(0x08, {0, 4286447616u, 4294967295u}, {}));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "overflow"); },
                                     {"overflow", "0 x 4286447616 x 4294967295", "overflow 64 bits", "corrupt"});
    check_throws_with<io::DataError>([&] { (void)io::read_idx(dir / "overflow"); }, {"overflow 64 bits"});
  }
  SUBCASE("more data than the header says") {
    Bytes longer = good;
    longer.push_back(7);
    write_gz(dir / "long.gz", longer);
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "long.gz"); },
                                     {"long.gz", "more data than its header says"});
  }
  SUBCASE("wrong magic number") {
    write_gz(dir / "labels.gz", labels_file({1, 2}));
    write_gz(dir / "images.gz", good);
    check_throws_with<io::DataError>(
        [&] { (void)io::read_idx_images(dir / "labels.gz"); },
        {"labels.gz", "wrong magic number", "expected an images file (magic 0x00000803) but found 0x00000801 (a labels file)", "swapped"});
    check_throws_with<io::DataError>(
        [&] { (void)io::read_idx_labels(dir / "images.gz"); },
        {"images.gz", "expected a labels file (magic 0x00000801) but found 0x00000803 (an images file)"});
    write_raw(dir / "floats", idx_bytes(0x0D, {1}, {0, 0, 128, 63}));
    check_throws_with<io::DataError>([&] { (void)io::read_idx(dir / "floats"); },
                                     {"floats", "float32 elements", "0x00000d01", "unsigned-byte"});
    write_raw(dir / "text", Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
    check_throws_with<io::DataError>([&] { (void)io::read_idx(dir / "text"); },
                                     {"text", "not an IDX file", "68 65 6c 6c"});
  }
  SUBCASE("a garbage .gz") {
    write_raw(dir / "garbage.gz", Bytes{'n', 'o', 't', ' ', 'g', 'z', 'i', 'p', ' ', 'a', 't', ' ', 'a', 'l', 'l'});
    check_throws_with<io::DataError>(
        [&] { (void)io::read_idx_images(dir / "garbage.gz"); },
        {"garbage.gz", "found 0x6e6f7420 (not an IDX file)", "named .gz but is not gzip-compressed", "6e 6f", "1f 8b"});
    // The gzip magic followed by garbage.
    write_raw(dir / "bad-stream.gz", Bytes{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "bad-stream.gz"); },
                                     {"bad-stream.gz", "not a valid gzip stream", "zlib reports", "corrupt"});
  }
  SUBCASE("a gzip stream whose trailer is cut off or damaged") {
    write_gz(dir / "ok.gz", good);
    const Bytes gz = read_file(dir / "ok.gz");
    // Without its trailer (or with part of it) the data inflates completely but is unverified.
    for (const std::size_t cut : {8, 5, 1}) {
      INFO("trailer bytes cut: " << cut);
      write_raw(dir / "no-trailer.gz", Bytes(gz.begin(), gz.end() - static_cast<std::ptrdiff_t>(cut)));
      check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "no-trailer.gz"); },
                                       {"no-trailer.gz", "truncated", "8-byte trailer", "CRC-32", "cannot be verified"});
    }
    Bytes length = gz;
    length[length.size() - 1] ^= 0x01;  // the uncompressed length, the trailer's last 4 bytes
    write_raw(dir / "length.gz", length);
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "length.gz"); },
                                     {"length.gz", "not a valid gzip stream", "incorrect length check"});
  }
  SUBCASE("bytes after the gzip stream: another member is read on, anything else is an error") {
    // gzip -c a b > ab: the members decompress back to back into one file.
    const Bytes first(good.begin(), good.begin() + 10), second(good.begin() + 10, good.end());
    write_gz(dir / "first.gz", first);
    write_gz(dir / "second.gz", second);
    Bytes two = read_file(dir / "first.gz");
    const Bytes tail = read_file(dir / "second.gz");
    two.insert(two.end(), tail.begin(), tail.end());
    write_raw(dir / "two-members.gz", two);
    weft::testing::check_close(io::read_idx_images(dir / "two-members.gz"), scaled(image_body(2, 3, 3)), Shape{2, 3, 3, 1});

    write_gz(dir / "ok.gz", good);
    const Bytes gz = read_file(dir / "ok.gz");
    const auto with_tail = [&](const Bytes& extra) {
      Bytes out = gz;
      out.insert(out.end(), extra.begin(), extra.end());
      return out;
    };
    write_raw(dir / "garbage-after.gz", with_tail({'x', 'y', 'z', '!', '?'}));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "garbage-after.gz"); },
                                     {"garbage-after.gz", "after the end of its gzip data", "78 79 7a 21", "again"});
    write_raw(dir / "one-byte-after.gz", with_tail({0x1f}));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "one-byte-after.gz"); },
                                     {"one-byte-after.gz", "after the end of its gzip data", "(they begin 1f)"});
    write_raw(dir / "zeros-after.gz", with_tail(Bytes(512, 0)));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "zeros-after.gz"); },
                                     {"zeros-after.gz", "00 00 00 00"});
    // A second member that breaks off after its 10-byte header, and one that holds more data than
    // the header says.
    write_raw(dir / "cut-member.gz", with_tail(Bytes(tail.begin(), tail.begin() + 10)));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "cut-member.gz"); },
                                     {"cut-member.gz", "truncated", "breaks off"});
    write_raw(dir / "extra-member.gz", with_tail(tail));
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "extra-member.gz"); },
                                     {"extra-member.gz", "more data than its header says"});
  }
  SUBCASE("a corrupted gzip body or checksum") {
    write_gz(dir / "ok.gz", images_file(20, 28, 28));
    Bytes gz = read_file(dir / "ok.gz");
    Bytes crc = gz;
    crc[crc.size() - 8] ^= 0xff;  // the CRC-32 of the trailer
    write_raw(dir / "crc.gz", crc);
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "crc.gz"); },
                                     {"crc.gz", "not a valid gzip stream", "incorrect data check"});
    for (std::size_t i = 20; i < gz.size() - 8; ++i) gz[i] = static_cast<std::uint8_t>(gz[i] * 7 + 1);
    write_raw(dir / "body.gz", gz);
    check_throws_with<io::DataError>([&] { (void)io::read_idx_images(dir / "body.gz"); },
                                     {"body.gz", "not a valid gzip stream"});
  }
}

// ---------------------------------------------------------------- Fashion-MNIST

TEST_CASE("io: load_fashion_mnist reads the four files from a directory, gzip or not") {
  TempDir dir;
  write_gz(dir / "train-images-idx3-ubyte.gz", images_file(5, 28, 28));
  write_raw(dir / "train-labels-idx1-ubyte", labels_file({0, 9, 3, 3, 1}));
  write_raw(dir / "t10k-images-idx3-ubyte", images_file(2, 28, 28));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", labels_file({4, 8}));
  const io::FashionMnist d = io::load_fashion_mnist(dir.path());
  CHECK(d.train_images.shape() == Shape{5, 28, 28, 1});
  CHECK(d.train_labels.to_int_vector() == std::vector<std::int32_t>{0, 9, 3, 3, 1});
  CHECK(d.test_images.shape() == Shape{2, 28, 28, 1});
  CHECK(d.test_labels.to_int_vector() == std::vector<std::int32_t>{4, 8});
  CHECK(d.train_images.to_vector() == scaled(image_body(5, 28, 28)));
  CHECK(io::kFashionMnistClasses[0] == "T-shirt/top");
  CHECK(io::kFashionMnistClasses[9] == "Ankle boot");

  SUBCASE("a missing file is named, with the package that provides it") {
    fs::remove(dir / "t10k-labels-idx1-ubyte.gz");
    check_throws_with<io::DataError>([&] { (void)io::load_fashion_mnist(dir.path()); },
                                     {"t10k-labels-idx1-ubyte.gz", "missing", "dataset-fashion-mnist",
                                      "apt-get install dataset-fashion-mnist"});
  }
  SUBCASE("a missing directory") {
    check_throws_with<io::DataError>([&] { (void)io::load_fashion_mnist(dir / "absent"); },
                                     {"absent", "does not exist", "train-images-idx3-ubyte.gz",
                                      "apt-get install dataset-fashion-mnist"});
  }
  SUBCASE("counts that disagree, and labels outside 0..9") {
    write_raw(dir / "train-labels-idx1-ubyte", labels_file({0, 9, 3, 3}));
    check_throws_with<io::DataError>([&] { (void)io::load_fashion_mnist(dir.path()); },
                                     {"train-images-idx3-ubyte.gz", "5 images", "train-labels-idx1-ubyte", "4 labels"});
    write_raw(dir / "train-labels-idx1-ubyte", labels_file({0, 9, 10, 3, 1}));
    check_throws_with<io::DataError>([&] { (void)io::load_fashion_mnist(dir.path()); },
                                     {"train-labels-idx1-ubyte", "label 10 at position 2", "0 to 9"});
  }
}

TEST_CASE("io: the installed Fashion-MNIST (dataset-fashion-mnist), when present") {
  const fs::path dir(io::kFashionMnistDir);
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: " << dir.string() << " is absent (apt-get install dataset-fashion-mnist)");
    return;
  }
  const io::FashionMnist d = io::load_fashion_mnist();
  CHECK(d.train_images.shape() == Shape{60000, 28, 28, 1});
  CHECK(d.train_labels.shape() == Shape{60000});
  CHECK(d.test_images.shape() == Shape{10000, 28, 28, 1});
  CHECK(d.test_labels.shape() == Shape{10000});
  const auto counts = [](const Tensor& labels) {
    std::array<int, 10> c{};
    for (const std::int32_t l : labels.values<std::int32_t>()) {
      REQUIRE((l >= 0 && l < 10));
      ++c[static_cast<std::size_t>(l)];
    }
    return c;
  };
  std::array<int, 10> train{}, test{};
  train.fill(6000);
  test.fill(1000);
  CHECK(counts(d.train_labels) == train);
  CHECK(counts(d.test_labels) == test);
  for (const Tensor& x : {d.train_images, d.test_images}) {
    const auto v = x.values<float>();
    CHECK(*std::min_element(v.begin(), v.end()) == 0.0f);
    CHECK(*std::max_element(v.begin(), v.end()) == 1.0f);
  }
  // The first training example is an ankle boot (label 9), as in every copy of the data set.
  CHECK(d.train_labels.values<std::int32_t>()[0] == 9);
}

// ---------------------------------------------------------------- batching pipeline

namespace {

/// n examples: image i is a [2, 3, 1] block of values 100 * i + j, label i.
io::LabeledImages numbered(std::int64_t n) {
  std::vector<float> v;
  for (std::int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 6; ++j) v.push_back(static_cast<float>(100 * i + j));
  return {Tensor(v, Shape{n, 2, 3, 1}), arange(n, DType::int32)};
}

/// Every batch's images hold the rows of the source named by its labels.
void check_rows_match(const io::Batch& b) {
  const auto labels = b.labels.to_int_vector();
  const auto images = b.images.to_vector();
  REQUIRE(images.size() == labels.size() * 6);
  for (std::size_t k = 0; k < labels.size(); ++k)
    for (std::size_t j = 0; j < 6; ++j) CHECK(images[k * 6 + j] == static_cast<float>(100 * labels[k] + static_cast<int>(j)));
}

std::vector<std::int32_t> epoch_order(const io::LabeledImages& d, std::int64_t batch_size, std::optional<Key> key,
                                      bool drop_last) {
  std::vector<std::int32_t> order;
  for (const io::Batch& b : io::batches(d.images, d.labels, batch_size, key, drop_last)) {
    check_rows_match(b);
    for (const std::int32_t l : b.labels.values<std::int32_t>()) order.push_back(l);
  }
  return order;
}

}  // namespace

TEST_CASE("io: num_batches") {
  CHECK(io::num_batches(10, 3, false) == 4);
  CHECK(io::num_batches(10, 3, true) == 3);
  CHECK(io::num_batches(9, 3, false) == 3);
  CHECK(io::num_batches(9, 3, true) == 3);
  CHECK(io::num_batches(2, 3, false) == 1);
  CHECK(io::num_batches(2, 3, true) == 0);
  CHECK(io::num_batches(0, 3, false) == 0);
  CHECK(io::num_batches(60000, 128, false) == 469);
  CHECK(io::num_batches(60000, 128, true) == 468);
  check_throws_with<ValueError>([] { (void)io::num_batches(10, 0, false); }, {"batch_size is 0", "at least 1"});
  check_throws_with<ValueError>([] { (void)io::num_batches(-1, 2, false); }, {"-1"});
  // Extremes: ceil(n / batch_size) without computing n + batch_size - 1.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  CHECK(io::num_batches(10, kMax, false) == 1);
  CHECK(io::num_batches(10, kMax, true) == 0);
  CHECK(io::num_batches(kMax, kMax, false) == 1);
  CHECK(io::num_batches(kMax, 2, false) == (1LL << 62));
  CHECK(io::num_batches(kMax, 2, true) == (1LL << 62) - 1);
  CHECK(io::num_batches(kMax - 1, kMax, false) == 1);
  CHECK(io::num_batches(0, kMax, false) == 0);
}

TEST_CASE("io: a batch size far beyond the data gives one batch of all rows") {
  const Tensor images = reshape(arange(6), {3, 2});
  const Tensor labels = arange(3, DType::int32);
  std::vector<std::int64_t> sizes;
  for (const io::Batch& b : io::batches(images, labels, std::numeric_limits<std::int64_t>::max(), std::nullopt, false)) {
    sizes.push_back(b.images.shape()[0]);
    CHECK(b.labels.to_int_vector() == std::vector<std::int32_t>{0, 1, 2});
  }
  CHECK(sizes == std::vector<std::int64_t>{3});
}

TEST_CASE("io: batches in file order, the last partial batch kept or dropped") {
  const auto d = numbered(10);
  auto kept = io::batches(d.images, d.labels, 4, std::nullopt, false);
  CHECK(ranges::size(kept) == 3);
  std::vector<Shape> shapes;
  for (const io::Batch& b : kept) {
    shapes.push_back(b.images.shape());
    CHECK(b.labels.shape() == Shape{b.images.shape()[0]});
  }
  CHECK(shapes == std::vector<Shape>{Shape{4, 2, 3, 1}, Shape{4, 2, 3, 1}, Shape{2, 2, 3, 1}});
  std::vector<std::int32_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  CHECK(epoch_order(d, 4, std::nullopt, false) == all);
  CHECK(epoch_order(d, 4, std::nullopt, true) == std::vector<std::int32_t>(all.begin(), all.begin() + 8));
  CHECK(ranges::size(io::batches(d.images, d.labels, 4, std::nullopt, true)) == 2);
  // Random access gives the same batch as iteration; a batch larger than the data is one batch.
  CHECK(kept[1].labels.to_int_vector() == std::vector<std::int32_t>{4, 5, 6, 7});
  CHECK(epoch_order(d, 32, std::nullopt, false) == all);
  CHECK(epoch_order(d, 32, std::nullopt, true).empty());
  CHECK(epoch_order(d, 1, std::nullopt, true) == all);
}

TEST_CASE("io: shuffled batches follow permutation(key, n), once per epoch") {
  const std::int64_t n = 103;
  const auto d = numbered(n);
  const Key key(42);
  const auto order0 = epoch_order(d, 10, fold_in(key, 0), false);
  CHECK(order0 == permutation(fold_in(key, 0), n).to_int_vector());
  // Every example exactly once.
  auto sorted = order0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int32_t> all(static_cast<std::size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted == all);
  // The same key, the same order; another epoch's key, another order.
  CHECK(epoch_order(d, 10, fold_in(key, 0), false) == order0);
  const auto order1 = epoch_order(d, 10, fold_in(key, 1), false);
  CHECK(order1 != order0);
  CHECK(order1 == permutation(fold_in(key, 1), n).to_int_vector());
  // Dropping the last batch drops the tail of the permutation.
  const auto dropped = epoch_order(d, 10, fold_in(key, 0), true);
  CHECK(dropped == std::vector<std::int32_t>(order0.begin(), order0.begin() + 100));
  // The range composes with range-v3's views (bound to a name) and with std::views (also as a
  // temporary: its iterators share the epoch, so it is a borrowed range).
  const auto epoch = io::batches(d.images, d.labels, 10, fold_in(key, 0), false);
  const auto labels = epoch | ranges::views::transform([](const io::Batch& b) { return b.labels.to_int_vector(); }) |
                      ranges::views::join | ranges::to<std::vector>();
  CHECK(labels == order0);
  auto firsts = io::batches(d.images, d.labels, 10, fold_in(key, 0), false) |
                std::views::transform([](const io::Batch& b) { return b.labels.to_int_vector()[0]; });
  std::vector<std::int32_t> want;
  for (std::size_t i = 0; i < order0.size(); i += 10) want.push_back(order0[i]);
  CHECK(std::vector<std::int32_t>(firsts.begin(), firsts.end()) == want);
  static_assert(std::ranges::random_access_range<io::Batches> && std::ranges::sized_range<io::Batches>);
}

TEST_CASE("io: batches of labels with more than one axis, and bad inputs") {
  const auto d = numbered(6);
  const Tensor one_hot_labels = one_hot(d.labels, 6);
  auto b = io::batches(d.images, one_hot_labels, 4, Key(1), false);
  const auto perm = permutation(Key(1), 6).to_int_vector();
  const io::Batch first = b[0];
  CHECK(first.labels.shape() == Shape{4, 6});
  const auto rows = first.labels.to_vector();
  for (std::size_t k = 0; k < 4; ++k) CHECK(rows[k * 6 + static_cast<std::size_t>(perm[k])] == 1.0f);

  check_throws_with<ValueError>([&] { (void)io::batches(d.images, d.labels, 0, std::nullopt, false); },
                                {"io::batches", "batch_size is 0"});
  check_throws_with<ValueError>([&] { (void)io::batches(d.images, d.labels, -5, Key(0), true); },
                                {"batch_size is -5"});
  const Tensor five = slice_axis(d.labels, 0, 0, 5);
  check_throws_with<ShapeError>([&] { (void)io::batches(d.images, five, 2, std::nullopt, false); },
                                {"io::batches", "6 rows", "(5,)", "have 5", "one label"});
  check_throws_with<ShapeError>([&] { (void)io::batches(Tensor(1.0f), d.labels, 2, std::nullopt, false); },
                                {"images", "scalar"});
  check_throws_with<Error>([&] { (void)io::batches(d.images, Tensor(), 2, std::nullopt, false); },
                           {"labels", "empty"});
}

TEST_CASE("sharded_batches: the shards of each global batch are its rows, split evenly, from one shuffle") {
  const std::int64_t n = 22;
  std::vector<float> pixels(static_cast<std::size_t>(n * 2));
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    pixels[static_cast<std::size_t>(2 * i)] = static_cast<float>(i);
    pixels[static_cast<std::size_t>(2 * i + 1)] = static_cast<float>(-i);
    ids[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  }
  const Tensor images(pixels, Shape{n, 2}), labels(ids, Shape{n});
  for (const bool drop_last : {true, false}) {
    for (const int count : {1, 2, 4}) {
      INFO("drop_last " << drop_last << ", " << count << " shards");
      const auto whole = io::batches(images, labels, 8, Key(3), drop_last);
      std::vector<std::vector<std::int32_t>> joined(static_cast<std::size_t>(io::num_batches(n, 8, drop_last)));
      for (int index = 0; index < count; ++index) {
        const auto shards = io::sharded_batches(images, labels, 8, Key(3), drop_last, io::Shard{index, count});
        REQUIRE(ranges::distance(shards) == static_cast<std::ptrdiff_t>(joined.size()));
        std::size_t b = 0;
        for (const io::Batch& shard : shards) {
          const auto rows = shard.labels.to_int_vector();
          // A full batch of 8 gives each shard 8 / count rows; the last partial batch of 6 splits as evenly as it can.
          const std::int64_t global_rows = b + 1 < joined.size() || drop_last ? 8 : 6;
          CHECK(static_cast<std::int64_t>(rows.size()) ==
                global_rows * (index + 1) / count - global_rows * index / count);
          for (std::size_t r = 0; r < rows.size(); ++r)
            CHECK(shard.images.to_vector()[2 * r] == static_cast<float>(rows[r]));  // images stay with their labels
          joined[b].insert(joined[b].end(), rows.begin(), rows.end());
          ++b;
        }
      }
      // The shards, in shard order, are the global batch: the same rows in the same order for any count.
      std::size_t b = 0;
      for (const io::Batch& global : whole) CHECK(joined[b++] == global.labels.to_int_vector());
    }
  }
}

TEST_CASE("sharded_batches: a shard that does not exist, or a batch that does not split evenly, is an error") {
  const Tensor images = zeros(Shape{8, 2}), labels = zeros(Shape{8});
  CHECK_THROWS_WITH_AS((void)io::sharded_batches(images, labels, 6, std::nullopt, true, io::Shard{0, 4}),
                       "weft::io::sharded_batches: the global batch of 6 rows does not split evenly into 4 shards; "
                       "use a global batch size that is a multiple of 4 (e.g. 8)",
                       ValueError);
  CHECK_THROWS_WITH_AS((void)io::sharded_batches(images, labels, 4, std::nullopt, true, io::Shard{2, 2}),
                       "weft::io::sharded_batches: shard 2 of 2 does not exist; the index runs from 0 to 1", ValueError);
  CHECK_THROWS_WITH_AS((void)io::sharded_batches(images, labels, 4, std::nullopt, true, io::Shard{0, 0}),
                       "weft::io::sharded_batches: the number of shards is 0; it must be at least 1", ValueError);
  CHECK_THROWS_AS((void)io::sharded_batches(images, zeros(Shape{7}), 4, std::nullopt, true, io::Shard{0, 2}),
                  ShapeError);
}
