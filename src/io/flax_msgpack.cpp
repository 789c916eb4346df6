// Flax's msgpack checkpoints through msgpack-cxx. Writing streams each array's bytes straight from
// its tensor into the file; reading maps the file and decodes each array from the mapping into its
// tensor (msgpack-cxx references the mapped bytes instead of copying them).
#include "weft/io/flax_msgpack.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <limits>
#include <msgpack.hpp>
#include <string_view>
#include <utility>

#include "../format.hpp"
#include "../tensor_impl.hpp"
#include "file.hpp"
#include "flax_msgpack_internal.hpp"
#include "stored_dtype.hpp"

namespace weft::io {

namespace fs = std::filesystem;

namespace {

/// _MsgpackExtType of flax.serialization.
constexpr std::int8_t kExtNdarray = 1, kExtNativeComplex = 2, kExtNpScalar = 3;
constexpr std::string_view kChunkedMarker = "__msgpack_chunked_array__";
/// Nesting deeper than this is not a state dict (and would only cost stack).
constexpr std::size_t kMaxDepth = 256;

// ---------------------------------------------------------------- writing

struct ByteSink {
  std::vector<std::byte>& out;
  void write(const char* data, std::size_t size) {
    const auto* p = reinterpret_cast<const std::byte*>(data);
    out.insert(out.end(), p, p + size);
  }
};

struct Leaf {
  std::vector<std::string_view> segments;
  const Tensor* tensor;
};

template <class Stream>
class FlaxWriter {
 public:
  FlaxWriter(Stream& out, std::uint64_t max_chunk_bytes) : out_(out), packer_(out), max_chunk_bytes_(max_chunk_bytes) {}

  void write(const Variables& variables) {
    const auto leaves = variables.leaves();
    std::vector<Leaf> split;
    split.reserve(leaves.size());
    for (const auto& [path, tensor] : leaves) {
      Leaf leaf{{}, &tensor};
      for (std::size_t begin = 0;;) {
        const std::size_t slash = path.find('/', begin);
        leaf.segments.push_back(std::string_view(path).substr(begin, slash - begin));
        if (slash == std::string::npos) break;
        begin = slash + 1;
      }
      split.push_back(std::move(leaf));
    }
    write_map(split, 0, split.size(), 0);
  }

 private:
  /// The map of the leaves [begin, end), which share their first `depth` segments; its keys sorted.
  void write_map(const std::vector<Leaf>& leaves, std::size_t begin, std::size_t end, std::size_t depth) {
    struct Group {
      std::string_view key;
      std::size_t begin, end;
    };
    std::vector<Group> groups;
    for (std::size_t i = begin; i < end;) {
      std::size_t j = i + 1;
      while (j < end && leaves[j].segments[depth] == leaves[i].segments[depth]) ++j;
      groups.push_back({leaves[i].segments[depth], i, j});
      i = j;
    }
    std::ranges::sort(groups, {}, &Group::key);
    packer_.pack_map(static_cast<std::uint32_t>(groups.size()));
    for (const Group& g : groups) {
      pack_string(g.key);
      if (leaves[g.begin].segments.size() == depth + 1)
        write_leaf(*leaves[g.begin].tensor);
      else
        write_map(leaves, g.begin, g.end, depth + 1);
    }
  }

  void pack_string(std::string_view s) {
    packer_.pack_str(static_cast<std::uint32_t>(s.size()));
    packer_.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
  }

  void write_leaf(const Tensor& t) {
    const std::string_view dtype = detail::stored_dtype_of(t.dtype()).numpy_name;
    const std::span<const std::byte> bytes =
        t.dtype() == DType::float32 ? std::as_bytes(t.values<float>()) : std::as_bytes(t.values<std::int32_t>());
    const auto dims = t.shape().to_vector();
    if (bytes.size() <= max_chunk_bytes_) {
      write_ndarray(dims, dtype, bytes);
      return;
    }
    // flax.serialization._chunk: the shape as {"0": d0, ...}, the flattened array in 1-D chunks.
    packer_.pack_map(3);
    pack_string(kChunkedMarker);
    packer_.pack_true();
    pack_string("shape");
    packer_.pack_map(static_cast<std::uint32_t>(dims.size()));
    for (std::size_t i = 0; i < dims.size(); ++i) {
      pack_string(std::to_string(i));
      packer_.pack(dims[i]);
    }
    constexpr std::uint64_t kItem = 4;
    const std::uint64_t chunk_bytes = std::max<std::uint64_t>(1, max_chunk_bytes_ / kItem) * kItem;
    const std::uint64_t chunks = (bytes.size() + chunk_bytes - 1) / chunk_bytes;
    pack_string("chunks");
    packer_.pack_map(static_cast<std::uint32_t>(chunks));
    for (std::uint64_t c = 0; c < chunks; ++c) {
      pack_string(std::to_string(c));
      const auto part = bytes.subspan(c * chunk_bytes, std::min(chunk_bytes, bytes.size() - c * chunk_bytes));
      write_ndarray({static_cast<std::int64_t>(part.size() / kItem)}, dtype, part);
    }
  }

  /// Extension type 1 holding the msgpack of (shape, dtype name, bytes), as _ndarray_to_bytes.
  void write_ndarray(const std::vector<std::int64_t>& dims, std::string_view dtype, std::span<const std::byte> bytes) {
    msgpack::sbuffer head;
    msgpack::packer<msgpack::sbuffer> p(head);
    p.pack_array(3);
    p.pack_array(static_cast<std::uint32_t>(dims.size()));
    for (const std::int64_t d : dims) p.pack(d);
    p.pack_str(static_cast<std::uint32_t>(dtype.size()));
    p.pack_str_body(dtype.data(), static_cast<std::uint32_t>(dtype.size()));
    p.pack_bin(static_cast<std::uint32_t>(bytes.size()));
    packer_.pack_ext(head.size() + bytes.size(), kExtNdarray);
    out_.write(head.data(), head.size());
    out_.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }

  Stream& out_;
  msgpack::packer<Stream> packer_;
  std::uint64_t max_chunk_bytes_;
};

// ---------------------------------------------------------------- reading

/// An array as _ndarray_from_bytes sees it: its bytes stay in the input.
struct ArrayView {
  std::vector<std::int64_t> dims;
  std::uint64_t elements;
  const detail::StoredDType* dtype;
  const std::byte* data;
};

bool reference_everything(msgpack::type::object_type, std::size_t, void*) { return true; }

std::string type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "an integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "bytes";
    case msgpack::type::ARRAY: return "a list";
    case msgpack::type::MAP: return "a dict";
    case msgpack::type::EXT: return fmt::format("an extension of type {}", o.via.ext.type());
  }
  return "an unknown msgpack type";
}

class FlaxReader {
 public:
  FlaxReader(std::span<const std::byte> bytes, const char* op, fs::path name)
      : bytes_(bytes), op_(op), name_(std::move(name)) {}

  Variables read() {
    const msgpack::object_handle root = unpack(bytes_, "the file");
    if (root.get().type != msgpack::type::MAP)
      fail(fmt::format("holds {}, not the dict of collections that flax.serialization.to_bytes writes",
                       type_name(root.get())));
    std::string path;
    node(root.get(), path, 0);
    try {
      return Variables::from_leaves(std::move(leaves_));
    } catch (const ValueError& e) {
      fail(fmt::format("holds a tree weft cannot represent ({}); a weft tree has leaves at "
                       "collection/.../name paths, two or more levels deep", e.what()));
    }
  }

 private:
  [[noreturn]] void fail(std::string_view what) const { detail::fail(op_, name_, what); }
  [[noreturn]] void fail_at(const std::string& path, std::string_view what) const {
    fail(fmt::format("at {}: {}", weft::detail::quoted(path), what));
  }

  /// One msgpack object that must span all of `bytes`.
  msgpack::object_handle unpack(std::span<const std::byte> bytes, const std::string& what) const {
    const std::size_t n = bytes.size();
    // Every element of a list or dict takes at least a byte: a count above the input size is corrupt,
    // and refusing it here keeps msgpack-cxx from allocating for it.
    const msgpack::unpack_limit limit(n, n, n, n, n, kMaxDepth);
    std::size_t offset = 0;
    msgpack::object_handle handle;
    try {
      handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), n, offset, reference_everything, nullptr, limit);
    } catch (const msgpack::insufficient_bytes&) {
      fail(fmt::format("{} is truncated: its msgpack ends before the object it starts ({} bytes)", what, n));
    } catch (const msgpack::unpack_error& e) {
      fail(fmt::format("{} is not valid msgpack ({}); the file is corrupt or not a Flax checkpoint", what, e.what()));
    }
    if (offset != n)
      fail(fmt::format("{} has {} bytes after its msgpack object; the file is corrupt", what, n - offset));
    return handle;
  }

  void node(const msgpack::object& o, std::string& path, std::size_t depth) {
    switch (o.type) {
      case msgpack::type::MAP: {
        const msgpack::object_map& map = o.via.map;
        for (std::uint32_t i = 0; i < map.size; ++i)
          if (map.ptr[i].key.type == msgpack::type::STR && key_of(map.ptr[i].key) == kChunkedMarker) {
            leaves_.emplace_back(path, unchunk(map, path));
            return;
          }
        for (std::uint32_t i = 0; i < map.size; ++i) {
          const msgpack::object& key = map.ptr[i].key;
          if (key.type != msgpack::type::STR)
            fail_at(path, fmt::format("a dict key is {}; Flax state dicts have string keys", type_name(key)));
          const std::string_view k = key_of(key);
          if (k.empty() || k.find('/') != std::string_view::npos)
            fail_at(path, fmt::format("the key {} is empty or holds '/', which weft paths cannot represent",
                                      weft::detail::quoted(k)));
          const std::size_t size = path.size();
          if (!path.empty()) path += '/';
          path += k;
          node(map.ptr[i].val, path, depth + 1);
          path.resize(size);
        }
        return;
      }
      case msgpack::type::EXT: {
        const msgpack::object_ext& ext = o.via.ext;
        if (ext.type() == kExtNdarray || ext.type() == kExtNpScalar) {
          leaves_.emplace_back(path, tensor(ndarray(ext, path)));
          return;
        }
        fail_at(path, ext.type() == kExtNativeComplex
                          ? std::string("a complex number (extension type 2), which weft cannot load")
                          : fmt::format("an extension of type {}, not an ndarray (type 1) or a NumPy scalar (type 3) "
                                        "of flax.serialization",
                                        ext.type()));
      }
      case msgpack::type::POSITIVE_INTEGER:
        if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
          fail_at(path, fmt::format("the integer {} does not fit int32", o.via.u64));
        leaves_.emplace_back(path, Tensor(std::vector<std::int32_t>{static_cast<std::int32_t>(o.via.u64)}, Shape{}));
        return;
      case msgpack::type::NEGATIVE_INTEGER:
        if (o.via.i64 < std::numeric_limits<std::int32_t>::min())
          fail_at(path, fmt::format("the integer {} does not fit int32", o.via.i64));
        leaves_.emplace_back(path, Tensor(std::vector<std::int32_t>{static_cast<std::int32_t>(o.via.i64)}, Shape{}));
        return;
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: {
        float f = 0;
        detail::decode(detail::StoredType::float64, reinterpret_cast<const std::byte*>(&o.via.f64), 1,
                         reinterpret_cast<std::byte*>(&f));
        leaves_.emplace_back(path, Tensor(f));
        return;
      }
      default:
        fail_at(path, fmt::format("holds {}; a Flax state dict holds dicts, arrays and numbers", type_name(o)));
    }
  }

  static std::string_view key_of(const msgpack::object& key) { return {key.via.str.ptr, key.via.str.size}; }

  static const msgpack::object* find(const msgpack::object_map& map, std::string_view key) {
    for (std::uint32_t i = 0; i < map.size; ++i)
      if (map.ptr[i].key.type == msgpack::type::STR && key_of(map.ptr[i].key) == key) return &map.ptr[i].val;
    return nullptr;
  }

  ArrayView ndarray(const msgpack::object_ext& ext, const std::string& path) const {
    const std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(ext.data()), ext.size);
    const msgpack::object_handle handle = unpack(payload, "the array at " + weft::detail::quoted(path));
    const msgpack::object& o = handle.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 3)
      fail_at(path, fmt::format("the array holds {} instead of (shape, dtype, bytes)", type_name(o)));
    const msgpack::object& shape = o.via.array.ptr[0];
    const msgpack::object& dtype = o.via.array.ptr[1];
    const msgpack::object& data = o.via.array.ptr[2];
    if (shape.type != msgpack::type::ARRAY)
      fail_at(path, fmt::format("the array's shape is {}, not a list", type_name(shape)));
    if (shape.via.array.size > static_cast<std::uint32_t>(Shape::kMaxRank))
      fail_at(path, fmt::format("the array has {} dimensions; weft tensors have at most {}", shape.via.array.size,
                                Shape::kMaxRank));
    ArrayView view{{}, 1, nullptr, nullptr};
    for (std::uint32_t i = 0; i < shape.via.array.size; ++i) view.dims.push_back(extent(shape.via.array.ptr[i], path));
    view.elements = elements(view.dims, path);
    if (dtype.type != msgpack::type::STR && dtype.type != msgpack::type::BIN)
      fail_at(path, fmt::format("the array's dtype is {}, not a name such as \"float32\"", type_name(dtype)));
    const std::string_view dtype_name(dtype.via.str.ptr, dtype.via.str.size);
    view.dtype = detail::find_numpy_dtype(dtype_name);
    if (view.dtype == nullptr)
      fail_at(path, fmt::format("the array has dtype {}, which weft cannot load ({})", weft::detail::quoted(dtype_name),
                                detail::kLoadableNumpy));
    if (data.type != msgpack::type::BIN && data.type != msgpack::type::STR)
      fail_at(path, fmt::format("the array's data is {}, not bytes", type_name(data)));
    const std::uint64_t size = data.via.bin.size;
    if (view.elements > size / view.dtype->itemsize || view.elements * view.dtype->itemsize != size)
      fail_at(path, fmt::format("the array's shape {} of {} needs {} elements but its data holds {} bytes",
                                weft::detail::extents_str(view.dims), dtype_name, view.elements, size));
    view.data = reinterpret_cast<const std::byte*>(data.via.bin.ptr);
    return view;
  }

  std::int64_t extent(const msgpack::object& d, const std::string& path) const {
    if (d.type != msgpack::type::POSITIVE_INTEGER || d.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail_at(path,
              fmt::format("an extent of the shape is {}; extents are non-negative integers",
                          d.type == msgpack::type::NEGATIVE_INTEGER ? fmt::format("{}", d.via.i64) : type_name(d)));
    return static_cast<std::int64_t>(d.via.u64);
  }

  std::uint64_t elements(const std::vector<std::int64_t>& dims, const std::string& path) const {
    std::uint64_t n = 1;
    for (const std::int64_t d : dims) {
      if (d != 0 && n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / static_cast<std::uint64_t>(d))
        fail_at(path, fmt::format("the shape {} has a size that overflows 64 bits", weft::detail::extents_str(dims)));
      n *= static_cast<std::uint64_t>(d);
    }
    return n;
  }

  static Tensor tensor(const ArrayView& a) {
    Tensor t = weft::detail::empty(Shape(a.dims), detail::loaded_dtype(a.dtype->type));
    detail::decode(a.dtype->type, a.data, a.elements, weft::detail::mutable_data<std::byte>(t));
    return t;
  }

  /// flax.serialization._unchunk: shape {"0": d0, ...}, chunks {"0": array, ...} concatenated.
  Tensor unchunk(const msgpack::object_map& map, const std::string& path) const {
    const msgpack::object* shape = find(map, "shape");
    const msgpack::object* chunks = find(map, "chunks");
    if (shape == nullptr || shape->type != msgpack::type::MAP || chunks == nullptr || chunks->type != msgpack::type::MAP)
      fail_at(path, "a chunked array needs the dicts \"shape\" and \"chunks\"");
    if (shape->via.map.size > static_cast<std::uint32_t>(Shape::kMaxRank))
      fail_at(path, fmt::format("the chunked array has {} dimensions; weft tensors have at most {}",
                                shape->via.map.size, Shape::kMaxRank));
    const auto entry = [&](const msgpack::object_map& m, std::uint32_t i, const char* what) -> const msgpack::object& {
      const msgpack::object* v = find(m, std::to_string(i));
      if (v == nullptr) fail_at(path, fmt::format("the chunked array's \"{}\" has no key \"{}\"", what, i));
      return *v;
    };
    std::vector<std::int64_t> dims;
    for (std::uint32_t i = 0; i < shape->via.map.size; ++i) dims.push_back(extent(entry(shape->via.map, i, "shape"), path));
    const std::uint64_t total = elements(dims, path);
    std::vector<ArrayView> parts;
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < chunks->via.map.size; ++i) {
      const msgpack::object& chunk = entry(chunks->via.map, i, "chunks");
      if (chunk.type != msgpack::type::EXT || chunk.via.ext.type() != kExtNdarray)
        fail_at(path, fmt::format("chunk {} is {}, not an ndarray", i, type_name(chunk)));
      parts.push_back(ndarray(chunk.via.ext, path));
      if (parts.back().dims.size() != 1 || parts.back().dtype != parts.front().dtype)
        fail_at(path, fmt::format("chunk {} is not a 1-D array of the first chunk's dtype", i));
      sum += parts.back().elements;  // each at most the input size: no overflow
    }
    if (parts.empty() || sum != total)
      fail_at(path, fmt::format("the chunks hold {} elements but the shape {} needs {}", sum,
                                weft::detail::extents_str(dims), total));
    Tensor t = weft::detail::empty(Shape(dims), detail::loaded_dtype(parts.front().dtype->type));
    std::byte* dst = weft::detail::mutable_data<std::byte>(t);
    for (const ArrayView& part : parts) {
      detail::decode(part.dtype->type, part.data, part.elements, dst);
      dst += part.elements * 4;
    }
    return t;
  }

  std::span<const std::byte> bytes_;
  const char* op_;
  fs::path name_;
  std::vector<std::pair<std::string, Tensor>> leaves_;
};

}  // namespace

std::vector<std::byte> detail::flax_msgpack_bytes(const Variables& variables, std::uint64_t max_chunk_bytes) {
  std::vector<std::byte> out;
  ByteSink sink{out};
  FlaxWriter<ByteSink>(sink, max_chunk_bytes).write(variables);
  return out;
}

std::vector<std::byte> to_flax_msgpack_bytes(const Variables& variables) {
  return detail::flax_msgpack_bytes(variables, detail::kFlaxMaxChunkBytes);
}

void save_flax_msgpack(const fs::path& path, const Variables& variables) {
  detail::AtomicFile file(path, "save_flax_msgpack");
  FlaxWriter<detail::AtomicFile>(file, detail::kFlaxMaxChunkBytes).write(variables);
  file.commit();
}

Variables load_flax_msgpack(const fs::path& path) {
  detail::InputFile file(path, "load_flax_msgpack");
  return FlaxReader(file.map(), "load_flax_msgpack", path).read();
}

Variables from_flax_msgpack_bytes(std::span<const std::byte> bytes, const std::string& name) {
  return FlaxReader(bytes, "from_flax_msgpack_bytes", name).read();
}

}  // namespace weft::io
