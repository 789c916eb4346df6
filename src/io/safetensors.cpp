// safetensors files: the JSON header through nlohmann::json, the data copied between the file and
// the tensors' own buffers (one copy each way; converted dtypes go through a small chunk).
#include "weft/io/safetensors.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "../format.hpp"
#include "../tensor_impl.hpp"
#include "file.hpp"
#include "stored_dtype.hpp"

namespace weft::io {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

/// The safetensors package refuses headers above 100 MB; so does weft, before allocating one.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
/// Bytes of a converted dtype (F16, BF16, F64) read per step before they are widened into the tensor.
constexpr std::size_t kConvertChunkBytes = std::size_t{1} << 20;
constexpr std::string_view kMetadataKey = "__metadata__";

/// Where the bytes come from: a file (positioned reads) or memory; with the names for messages.
struct Source {
  std::uint64_t size;
  std::function<void(std::uint64_t offset, std::span<std::byte> out)> read;
  const char* op;
  fs::path name;
  [[noreturn]] void fail(std::string_view what) const { detail::fail(op, name, what); }
};

struct Entry {
  std::string name;
  const detail::StoredDType* dtype;
  Shape shape;
  std::uint64_t begin, end;  // in the data section
};

struct Header {
  std::vector<Entry> entries;
  SafetensorsMetadata metadata;
  std::uint64_t data_start;  // 8 + header length
};

std::string describe(const Json& j) {
  std::string s = j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

/// A non-negative integer of the header (a JSON number without fraction or sign).
std::uint64_t unsigned_field(const Source& src, const Json& j, const std::string& what) {
  if (!j.is_number_unsigned()) src.fail(fmt::format("{} is {}; it must be a non-negative integer", what, describe(j)));
  return j.get<std::uint64_t>();
}

Entry parse_entry(const Source& src, const std::string& name, const Json& info, std::uint64_t data_size) {
  const std::string where = fmt::format("tensor {}", weft::detail::quoted(name));
  if (!info.is_object()) src.fail(fmt::format("{} is described by {}; expected an object "
                                              "{{\"dtype\", \"shape\", \"data_offsets\"}}", where, describe(info)));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!info.contains(field)) src.fail(fmt::format("{} has no \"{}\" in the header", where, field));
  const Json& dtype = info["dtype"];
  if (!dtype.is_string()) src.fail(fmt::format("{} has dtype {}; it must be a string such as \"F32\"",
                                               where, describe(dtype)));
  const auto* stored = detail::find_safetensors_dtype(dtype.get_ref<const std::string&>());
  if (stored == nullptr)
    src.fail(fmt::format("{} has dtype {}, which weft cannot load ({}); convert it before saving", where,
                         describe(dtype), detail::kLoadableSafetensors));
  const Json& shape = info["shape"];
  if (!shape.is_array()) src.fail(fmt::format("{} has shape {}; it must be an array of extents",
                                              where, describe(shape)));
  if (shape.size() > static_cast<std::size_t>(Shape::kMaxRank))
    src.fail(fmt::format("{} has {} dimensions; weft tensors have at most {}", where, shape.size(), Shape::kMaxRank));
  std::vector<std::int64_t> dims;
  std::uint64_t elements = 1;
  bool overflow = false;
  for (const Json& d : shape) {
    const std::uint64_t extent = unsigned_field(src, d, fmt::format("{}: an extent of its shape", where));
    if (extent > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) overflow = true;
    if (extent != 0 && elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / extent)
      overflow = true;
    elements = overflow ? elements : elements * extent;
    dims.push_back(static_cast<std::int64_t>(extent));
  }
  if (overflow) src.fail(fmt::format("{} has shape {}, whose size overflows 64 bits; the header is corrupt",
                                     where, describe(shape)));
  const Json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    src.fail(fmt::format("{} has data_offsets {}; it must be [begin, end]", where, describe(offsets)));
  const std::uint64_t begin = unsigned_field(src, offsets[0], fmt::format("{}: data_offsets[0]", where));
  const std::uint64_t end = unsigned_field(src, offsets[1], fmt::format("{}: data_offsets[1]", where));
  if (begin > end)
    src.fail(fmt::format("{} has data_offsets [{}, {}], which end before they begin", where, begin, end));
  if (end > data_size)
    src.fail(fmt::format("{} has data_offsets [{}, {}] beyond the {} bytes of data in the file; the file is truncated "
                         "or corrupt",
                         where, begin, end, data_size));
  if (elements > (end - begin) / stored->itemsize || elements * stored->itemsize != end - begin)
    src.fail(fmt::format("{} has shape {} of {} {} elements ({} bytes) but data_offsets [{}, {}] hold {} bytes", where,
                         describe(shape), elements, stored->safetensors_name,
                         elements > std::numeric_limits<std::uint64_t>::max() / stored->itemsize
                             ? std::string("more than 2^64")
                             : fmt::format("{}", elements * stored->itemsize),
                         begin, end, end - begin));
  return {name, stored, Shape(dims), begin, end};
}

/// The tensors' byte ranges must tile the data section: no overlap, no gap, nothing after the last.
void check_layout(const Source& src, std::vector<Entry>& entries, std::uint64_t data_size) {
  std::ranges::sort(entries, [](const Entry& a, const Entry& b) { return std::pair(a.begin, a.end) < std::pair(b.begin, b.end); });
  std::uint64_t expected = 0;
  const Entry* previous = nullptr;
  const auto range = [](const Entry& e) { return fmt::format("[{}, {})", e.begin, e.end); };
  for (const Entry& e : entries) {
    if (e.begin < expected)
      src.fail(fmt::format("tensor {} has bytes {} that overlap those of tensor {} {}; the header is corrupt",
                           weft::detail::quoted(e.name), range(e), weft::detail::quoted(previous->name),
                           range(*previous)));
    if (e.begin > expected)
      src.fail(fmt::format("tensor {} starts at byte {} of the data but the bytes before it end at {}; the data has a "
                           "gap, which safetensors does not allow",
                           weft::detail::quoted(e.name), e.begin, expected));
    expected = e.end;
    previous = &e;
  }
  if (expected != data_size)
    src.fail(fmt::format("the tensors' data ends at byte {} but the file holds {} bytes of data; the file has trailing "
                         "bytes or is corrupt",
                         expected, data_size));
}

Header read_header(const Source& src) {
  if (src.size < 8)
    src.fail(fmt::format("is truncated: it has {} bytes, but a safetensors file starts with an 8-byte header length",
                         src.size));
  std::array<std::byte, 8> prefix{};
  src.read(0, prefix);
  std::uint64_t length = 0;
  std::memcpy(&length, prefix.data(), 8);  // little-endian, as the host (stored_dtype.hpp checks)
  if (length > src.size - 8)
    src.fail(fmt::format("declares a header of {} bytes but the file has only {} bytes after the length; the file is "
                         "truncated or not a safetensors file",
                         length, src.size - 8));
  if (length > kMaxHeaderBytes)
    src.fail(fmt::format("declares a header of {} bytes, more than the {} that safetensors allows; the file is corrupt "
                         "or not a safetensors file",
                         length, kMaxHeaderBytes));
  std::string text(length, '\0');
  src.read(8, std::as_writable_bytes(std::span(text)));
  if (text.empty() || text.front() != '{')
    src.fail("has a header that does not start with '{'; it is not a safetensors file");
  Json json;
  try {
    json = Json::parse(text);
  } catch (const Json::exception& e) {
    src.fail(fmt::format("has a header that is not valid JSON ({}); the file is corrupt or not a safetensors file",
                         e.what()));
  }
  if (!json.is_object()) src.fail("has a header that is not a JSON object");
  Header h{{}, {}, 8 + length};
  const std::uint64_t data_size = src.size - h.data_start;
  for (const auto& [key, value] : json.items()) {
    if (key != kMetadataKey) {
      h.entries.push_back(parse_entry(src, key, value, data_size));
      continue;
    }
    if (!value.is_object()) src.fail("has a \"__metadata__\" that is not an object of string values");
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string()) src.fail(fmt::format("has \"__metadata__\" entry {} = {}; metadata values must be strings",
                                               weft::detail::quoted(k), describe(v)));
      h.metadata.emplace(k, v.get<std::string>());
    }
  }
  check_layout(src, h.entries, data_size);
  return h;
}

Variables read_tensors(const Source& src) {
  Header h = read_header(src);
  std::vector<std::pair<std::string, Tensor>> leaves;
  leaves.reserve(h.entries.size());
  for (const Entry& e : h.entries) leaves.emplace_back(e.name, weft::detail::empty(e.shape, detail::loaded_dtype(e.dtype->type)));
  // The tree is built before the data is read, so that a name that is not a weft path fails before
  // the (possibly large) read. Nothing else sees the tensors until this returns.
  Variables out;
  try {
    out = Variables::from_leaves(leaves);
  } catch (const ValueError& err) {
    src.fail(fmt::format("holds a tensor name that is not a weft path ({}); weft names tensors by "
                         "'/'-joined paths such as \"params/Dense_0/kernel\"", err.what()));
  }
  std::unique_ptr<std::byte[]> chunk;
  for (std::size_t i = 0; i < h.entries.size(); ++i) {
    const Entry& e = h.entries[i];
    auto* dst = weft::detail::mutable_data<std::byte>(leaves[i].second);
    const std::uint64_t bytes = e.end - e.begin;
    if (e.dtype->type == detail::StoredType::float32 || e.dtype->type == detail::StoredType::int32) {
      src.read(h.data_start + e.begin, std::span(dst, bytes));
      continue;
    }
    if (!chunk) chunk = std::make_unique_for_overwrite<std::byte[]>(kConvertChunkBytes);
    const std::size_t item = e.dtype->itemsize;
    for (std::uint64_t done = 0; done < bytes;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes - done, kConvertChunkBytes));
      src.read(h.data_start + e.begin + done, std::span(chunk.get(), n));
      detail::decode(e.dtype->type, chunk.get(), n / item, dst + done / item * 4);
      done += n;
    }
  }
  return out;
}

Source file_source(const detail::InputFile& file, const char* op, const fs::path& path) {
  return {file.size(), [&file](std::uint64_t offset, std::span<std::byte> out) { file.read(offset, out); }, op, path};
}

Source memory_source(std::span<const std::byte> bytes, const char* op, const std::string& name) {
  Source src{bytes.size(), {}, op, name};
  src.read = [bytes, op, name](std::uint64_t offset, std::span<std::byte> out) {
    if (offset > bytes.size() || out.size() > bytes.size() - offset)
      detail::fail(op, name, "is truncated");  // read_header's checks keep every read in range
    if (!out.empty()) std::memcpy(out.data(), bytes.data() + offset, out.size());
  };
  return src;
}

/// The header (with its length prefix and padding) and the tensors' data, in file order.
struct Encoded {
  std::string prefix;
  std::vector<std::span<const std::byte>> data;
};

Encoded encode(const std::vector<std::pair<std::string, Tensor>>& leaves, const SafetensorsMetadata& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  Encoded out;
  std::uint64_t offset = 0;
  for (const auto& [path, t] : leaves) {
    const std::span<const std::byte> bytes =
        t.dtype() == DType::float32 ? std::as_bytes(t.values<float>()) : std::as_bytes(t.values<std::int32_t>());
    header[path] = {{"dtype", detail::stored_dtype_of(t.dtype()).safetensors_name},
                    {"shape", t.shape().to_vector()},
                    {"data_offsets", {offset, offset + bytes.size()}}};
    offset += bytes.size();
    out.data.push_back(bytes);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  const std::uint64_t length = text.size();
  out.prefix.resize(8);
  std::memcpy(out.prefix.data(), &length, 8);
  out.prefix += text;
  return out;
}

}  // namespace

void save_safetensors(const fs::path& path, const Variables& variables, const SafetensorsMetadata& metadata) {
  const auto leaves = variables.leaves();
  const Encoded encoded = encode(leaves, metadata);
  detail::AtomicFile file(path, "save_safetensors");
  file.write(encoded.prefix);
  for (const auto& bytes : encoded.data) file.write(bytes);
  file.commit();
}

std::vector<std::byte> to_safetensors_bytes(const Variables& variables, const SafetensorsMetadata& metadata) {
  const auto leaves = variables.leaves();
  const Encoded encoded = encode(leaves, metadata);
  const auto prefix = std::as_bytes(std::span(encoded.prefix));
  std::vector<std::byte> out(prefix.begin(), prefix.end());
  for (const auto& bytes : encoded.data) out.insert(out.end(), bytes.begin(), bytes.end());
  return out;
}

Variables load_safetensors(const fs::path& path) {
  const detail::InputFile file(path, "load_safetensors");
  return read_tensors(file_source(file, "load_safetensors", path));
}

SafetensorsMetadata load_safetensors_metadata(const fs::path& path) {
  const detail::InputFile file(path, "load_safetensors_metadata");
  return read_header(file_source(file, "load_safetensors_metadata", path)).metadata;
}

Variables from_safetensors_bytes(std::span<const std::byte> bytes, const std::string& name) {
  return read_tensors(memory_source(bytes, "from_safetensors_bytes", name));
}

}  // namespace weft::io
