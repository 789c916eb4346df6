// IDX files, raw or gzip-compressed. gzip data goes through zlib's inflate directly, not its gz*
// API: gzread accepts a stream whose trailer is cut off (its CRC-32 and length then go unchecked)
// and silently ignores bytes after the last member, both of which must be errors here.
#include "weft/io/idx.hpp"

#include <zlib.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../checked.hpp"
#include "../tensor_impl.hpp"

namespace weft::io {

namespace fs = std::filesystem;

namespace {

/// Bytes decompressed per gzread call: large enough that zlib inflates straight into our buffer,
/// small enough that the chunk stays in cache while it is converted.
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
/// deflate never compresses better than about 1032:1, so a gzip file of c bytes holds at most this
/// many bytes per byte of input; a header that claims more describes data the file cannot hold.
constexpr std::int64_t kMaxDeflateRatio = 1032;

std::string hex32(std::uint32_t v) { return fmt::format("{:#010x}", v); }

std::string hex_bytes(std::span<const std::uint8_t> bytes) {
  return fmt::format("{:02x}", fmt::join(bytes, " "));
}

std::string dims_str(const std::vector<std::int64_t>& dims) {
  return dims.empty() ? "a scalar" : fmt::format("{}", fmt::join(dims, " x "));
}

std::string type_name(std::uint8_t type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "16-bit integer";
    case 0x0C: return "32-bit integer";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown type";
  }
}

/// What a magic number announces, in words: "a labels file", "an images file", ...
std::string describe_magic(std::uint32_t magic) {
  if (magic == kIdxLabelsMagic) return "a labels file";
  if (magic == kIdxImagesMagic) return "an images file";
  if ((magic >> 16) != 0) return "not an IDX file";
  const auto type = static_cast<std::uint8_t>(magic >> 8);
  return fmt::format("an IDX file of {} dimensions with {} elements", magic & 0xff, type_name(type));
}

struct FileClose {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

/// The bytes of a file, inflated when it starts with the gzip magic 1f 8b (any other file is read
/// as it is, as zlib's gzread does). A gzip file may hold several members one after another, read
/// as one stream as gzip does; each must end with its 8-byte trailer, whose CRC-32 and length
/// inflate verifies. Anything after the last member that is not another member is an error (gzip
/// only warns about "trailing garbage"; here it means a damaged file).
class ByteSource {
 public:
  /// `on_error` throws the caller's DataError with a description of what is wrong.
  ByteSource(const fs::path& path, std::function<void(const std::string&)> on_error) : fail_(std::move(on_error)) {
    errno = 0;
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) {
      const int err = errno;
      fail(fmt::format("cannot be opened ({})",
                       (err ? std::generic_category().message(err) : std::string("out of memory"))));
    }
    in_ = std::make_unique_for_overwrite<std::uint8_t[]>(kInputBytes);
    next_ = in_.get();
    fill(2);
    compressed_ = available_ >= 2 && next_[0] == 0x1f && next_[1] == 0x8b;
    if (compressed_) {
      stream_.emplace();
      if (inflateInit2(&*stream_, 15 + 16) != Z_OK) fail("cannot be read (zlib: out of memory)");  // 16: gzip only
    }
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;
  ~ByteSource() {
    if (stream_) inflateEnd(&*stream_);
  }

  [[nodiscard]] bool compressed() const noexcept { return compressed_; }
  /// The last read stopped because a gzip stream broke off: the file ended inside a member.
  [[nodiscard]] bool cut_off() const noexcept { return cut_off_; }

  /// Reads up to out.size() bytes; fewer only at the end of the data (or where a gzip stream
  /// breaks off). Corrupt gzip data throws, naming `part` of the IDX file.
  std::int64_t read(std::span<std::uint8_t> out, const char* part) {
    if (!compressed_) return read_raw(out);
    z_stream& z = *stream_;
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    while (z.avail_out > 0) {
      if (member_ended_) {
        // Between members: the end of the file, another member, or garbage.
        fill(2);
        if (available_ == 0) break;
        if (available_ < 2 || next_[0] != 0x1f || next_[1] != 0x8b)
          fail(fmt::format("has bytes after the end of its gzip data that do not start another gzip member (they begin "
                           "{}); the file is damaged or was appended to, so download or copy it again",
                           hex_bytes(std::span<const std::uint8_t>(next_, std::min<std::size_t>(available_, 4)))));
        inflateReset(&z);
        member_ended_ = false;
      }
      if (available_ == 0 && fill(1) == 0) {
        cut_off_ = true;  // inside a member: its data or its trailer is missing
        break;
      }
      z.next_in = next_;
      z.avail_in = static_cast<uInt>(available_);
      const int code = inflate(&z, Z_NO_FLUSH);
      next_ = z.next_in;
      available_ = z.avail_in;
      if (code == Z_STREAM_END) {
        member_ended_ = true;  // the trailer's CRC-32 and length matched
      } else if (code != Z_OK) {
        fail(fmt::format("is not a valid gzip stream: zlib reports \"{}\" in the {}; the "
                         "file is corrupt, so download or copy it again", (z.msg ? z.msg : zError(code)), part));
      }
    }
    return static_cast<std::int64_t>(out.size() - z.avail_out);
  }

 private:
  static constexpr std::size_t kInputBytes = 256 * 1024;  // compressed bytes read per fread

  [[noreturn]] void fail(const std::string& what) const {
    fail_(what);
    throw DataError(what);  // not reached: fail_ throws the caller's fuller error
  }

  std::int64_t read_raw(std::span<std::uint8_t> out) {
    std::size_t got = std::min(available_, out.size());  // the bytes looked at to detect gzip
    std::copy_n(next_, got, out.data());
    next_ += got;
    available_ -= got;
    while (got < out.size()) {
      const std::size_t n = std::fread(out.data() + got, 1, out.size() - got, file_.get());
      got += n;
      if (n == 0) {
        check_read_error();
        break;
      }
    }
    return static_cast<std::int64_t>(got);
  }

  /// Makes at least `want` bytes available when the file has them (moving what is left to the
  /// front of the buffer); returns how many are available.
  std::size_t fill(std::size_t want) {
    if (available_ >= want) return available_;
    if (available_ > 0) std::memmove(in_.get(), next_, available_);
    next_ = in_.get();
    while (available_ < want) {
      const std::size_t n = std::fread(in_.get() + available_, 1, kInputBytes - available_, file_.get());
      available_ += n;
      if (n == 0) {
        check_read_error();
        break;
      }
    }
    return available_;
  }

  void check_read_error() {
    if (std::ferror(file_.get())) fail(fmt::format("cannot be read ({})", std::generic_category().message(errno)));
  }

  std::function<void(const std::string&)> fail_;
  std::unique_ptr<std::FILE, FileClose> file_;
  std::unique_ptr<std::uint8_t[]> in_;
  std::uint8_t* next_ = nullptr;  // the first unread byte in in_
  std::size_t available_ = 0;     // unread bytes from next_ on
  std::optional<z_stream> stream_;
  bool compressed_ = false;
  bool member_ended_ = false;
  bool cut_off_ = false;
};

/// An open IDX file: reads the header, then the body in chunks, and turns every failure into a
/// DataError that names the calling function and the file.
class IdxReader {
 public:
  IdxReader(const fs::path& path, const char* op) : path_(path), op_(op) {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (!fs::exists(status))
      fail("no such file; check the path (and that the data set is installed)");
    if (fs::is_directory(status)) fail("is a directory, not an IDX file; pass the path of the file inside it");
    file_size_ = static_cast<std::int64_t>(fs::file_size(path, ec));
    if (ec) fail(fmt::format("cannot read its size ({})", ec.message()));
    source_.emplace(path, [this](const std::string& what) { fail(what); });
    compressed_ = source_->compressed();
  }

  /// Reads the magic number and the extents. `expected` is the magic the caller needs, or 0 for
  /// any unsigned-byte file.
  std::vector<std::int64_t> read_header(std::uint32_t expected) {
    std::array<std::uint8_t, 4> m{};
    const std::int64_t got = read_some(m, "header");
    if (got < 4)
      fail(fmt::format("is truncated: {} after {} bytes, before the end of the 4-byte IDX magic number{}", ends(), got,
                       fix_truncated()));
    const std::uint32_t magic = std::uint32_t{m[0]} << 24 | std::uint32_t{m[1]} << 16 | std::uint32_t{m[2]} << 8 | m[3];
    if (expected != 0 && magic != expected) {
      fail(fmt::format("has the wrong magic number: expected {} (magic {}) but found {} ({}){}{}",
                       describe_magic(expected), hex32(expected), hex32(magic), describe_magic(magic), not_gzip_hint(m),
                       magic == kIdxLabelsMagic || magic == kIdxImagesMagic
                           ? "; images and labels files may have been swapped"
                           : ""));
    }
    if ((magic >> 16) != 0)
      fail(fmt::format("is not an IDX file: it starts with bytes {} but an IDX file starts with 00 00, a type byte and "
                       "a rank byte{}",
                       hex_bytes(m), not_gzip_hint(m)));
    if (m[2] != 0x08)
      fail(fmt::format("holds {} elements (magic {}); weft reads unsigned-byte IDX files (type 0x08) only",
                       type_name(m[2]), hex32(magic)));
    const int rank = m[3];
    std::vector<std::uint8_t> raw(static_cast<std::size_t>(rank) * 4);
    const std::int64_t got_dims = read_some(raw, "header");
    if (got_dims < static_cast<std::int64_t>(raw.size()))
      fail(fmt::format("is truncated: its header announces {} dimensions ({} bytes of extents) but {} after {} of "
                       "them{}",
                       rank, raw.size(), ends(), got_dims, fix_truncated()));
    std::vector<std::int64_t> dims(static_cast<std::size_t>(rank));
    for (std::size_t d = 0; d < dims.size(); ++d) {
      const std::uint8_t* p = raw.data() + 4 * d;
      dims[d] = std::int64_t{p[0]} << 24 | std::int64_t{p[1]} << 16 | std::int64_t{p[2]} << 8 | std::int64_t{p[3]};
    }
    header_bytes_ = 4 + static_cast<std::int64_t>(raw.size());
    check_size(dims);
    return dims;
  }

  /// Reads exactly `total` body bytes (the product of the extents), giving each chunk to
  /// consume(chunk, offset); then makes sure nothing follows them.
  template <class F>
  void read_body(F&& consume) {
    auto chunk = std::make_unique_for_overwrite<std::uint8_t[]>(kChunkBytes);
    std::int64_t offset = 0;
    while (offset < total_) {
      const auto want = static_cast<std::size_t>(std::min<std::int64_t>(total_ - offset, kChunkBytes));
      const std::int64_t got = read_some(std::span(chunk.get(), want), "data");
      consume(std::span<const std::uint8_t>(chunk.get(), static_cast<std::size_t>(got)), offset);
      offset += got;
      if (got < static_cast<std::int64_t>(want))
        fail(fmt::format("is truncated: its header says {} = {} bytes of data but {} after {} bytes of data{}",
                         dims_str(dims_), total_, ends(), offset, fix_truncated()));
    }
    // One more byte read reaches the end of the gzip stream, where zlib checks its CRC and length.
    std::array<std::uint8_t, 1> extra{};
    if (read_some(extra, "data") != 0)
      fail(fmt::format("has more data than its header says ({} = {} bytes); the header or the data is wrong, so the "
                       "file cannot be trusted",
                       dims_str(dims_), total_));
    if (cut_off_)
      fail(fmt::format("is truncated: its data is complete but the gzip stream breaks off before "
                       "its end (the 8-byte trailer with the CRC-32 and length of the data is "
                       "missing or cut), so the data cannot be verified{}", fix_truncated()));
  }

  [[nodiscard]] std::int64_t total() const noexcept { return total_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("weft::io::{}: {} {}", op_, path_.string(), what));
  }

 private:
  /// Reads up to out.size() bytes; fewer only at the end of the data. A corrupt gzip stream throws.
  std::int64_t read_some(std::span<std::uint8_t> out, const char* part) {
    const std::int64_t got = source_->read(out, part);
    cut_off_ = source_->cut_off();
    return got;
  }

  /// Checks the extents against int64 and against what a file of this size can hold, before
  /// anything is allocated for them.
  void check_size(const std::vector<std::int64_t>& dims) {
    dims_ = dims;
    // The check a Shape makes: a zero extent does not excuse the others from fitting in int64.
    const auto product = weft::detail::checked_product(dims);
    if (!product) fail(fmt::format("has a header whose extents {} overflow 64 bits; the header is corrupt",
                                   dims_str(dims)));
    const std::int64_t total = *product;
    total_ = total;
    const std::int64_t available = file_size_ - header_bytes_;
    if (!compressed_ && total > available)
      fail(fmt::format("is truncated: its header says {} = {} bytes of data but the file ends after {} bytes of data{}",
                       dims_str(dims), total, available, fix_truncated()));
    if (compressed_ && total / kMaxDeflateRatio > file_size_)
      fail(fmt::format("is truncated or corrupt: its header says {} = {} bytes of data, more than a gzip file of {} "
                       "bytes can hold{}",
                       dims_str(dims), total, file_size_, fix_truncated()));
  }

  /// How the data ended early: a raw file's end, a complete gzip stream's end, or a gzip stream
  /// that breaks off (the compressed file itself is cut).
  std::string ends() const {
    if (!compressed_) return "the file ends";
    return cut_off_ ? "the gzip stream breaks off (unexpected end of file)" : "the gzip stream ends";
  }

  std::string fix_truncated() const {
    return "; the file is incomplete (an interrupted download or copy?), so fetch or copy it again";
  }

  /// When a file named *.gz turns out not to be gzip, say so: it explains the garbage.
  std::string not_gzip_hint(std::span<const std::uint8_t> first) const {
    if (compressed_ || path_.extension() != ".gz") return "";
    return fmt::format(" (the file is named .gz but is not gzip-compressed: it starts with {}, not the gzip "
                       "magic 1f 8b)",
                       hex_bytes(first.first(2)));
  }

  fs::path path_;
  const char* op_;
  std::optional<ByteSource> source_;
  std::int64_t file_size_ = 0;
  std::int64_t header_bytes_ = 0;
  std::int64_t total_ = 0;
  std::vector<std::int64_t> dims_;
  bool compressed_ = false;
  bool cut_off_ = false;
};

/// A new tensor of `shape`; a header that claims more memory than there is becomes a DataError.
Tensor allocate(const IdxReader& reader, const Shape& shape, DType dtype) {
  try {
    return weft::detail::empty(shape, dtype);
  } catch (const std::bad_alloc&) {
    reader.fail(fmt::format("has a header that asks for a tensor of shape {}, more memory than "
                            "is available; the header is probably corrupt", shape.str()));
  }
}

}  // namespace

IdxData read_idx(const fs::path& path) {
  IdxReader reader(path, "read_idx");
  IdxData out;
  out.dims = reader.read_header(0);
  try {
    out.bytes.resize(static_cast<std::size_t>(reader.total()));
  } catch (const std::bad_alloc&) {
    reader.fail(fmt::format("has a header that asks for {} bytes, more memory than is available; the header is "
                            "probably corrupt",
                            reader.total()));
  }
  reader.read_body([&](std::span<const std::uint8_t> chunk, std::int64_t offset) {
    std::copy(chunk.begin(), chunk.end(), out.bytes.begin() + offset);
  });
  return out;
}

Tensor read_idx_images(const fs::path& path) {
  IdxReader reader(path, "read_idx_images");
  const auto dims = reader.read_header(kIdxImagesMagic);
  Tensor images = allocate(reader, Shape{dims[0], dims[1], dims[2], 1}, DType::float32);
  float* out = weft::detail::mutable_data<float>(images);
  reader.read_body([&](std::span<const std::uint8_t> chunk, std::int64_t offset) {
    // Division, not a multiplication by 1/255: it gives the correctly rounded byte / 255, so
    // 255 becomes exactly 1.0f. The loop vectorises.
    float* dst = out + offset;
    const std::uint8_t* src = chunk.data();
    const std::size_t n = chunk.size();
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
  });
  return images;
}

Tensor read_idx_labels(const fs::path& path) {
  IdxReader reader(path, "read_idx_labels");
  const auto dims = reader.read_header(kIdxLabelsMagic);
  Tensor labels = allocate(reader, Shape{dims[0]}, DType::int32);
  std::int32_t* out = weft::detail::mutable_data<std::int32_t>(labels);
  reader.read_body([&](std::span<const std::uint8_t> chunk, std::int64_t offset) {
    std::copy(chunk.begin(), chunk.end(), out + offset);
  });
  return labels;
}

LabeledImages read_idx_pair(const fs::path& images_path, const fs::path& labels_path) {
  LabeledImages out{read_idx_images(images_path), read_idx_labels(labels_path)};
  const std::int64_t n_images = out.images.shape()[0];
  const std::int64_t n_labels = out.labels.shape()[0];
  if (n_images != n_labels)
    throw DataError(fmt::format("weft::io::read_idx_pair: {} holds {} images but {} holds {} labels; an images file "
                                "needs the labels file of the same split (train with train, t10k with t10k)",
                                images_path.string(), n_images, labels_path.string(), n_labels));
  return out;
}

}  // namespace weft::io
