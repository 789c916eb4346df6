#pragma once
// Internal: the file access that weft's checkpoint formats share. Every failure is a
// weft::io::DataError that names the calling function (`op`) and the file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weft/io/data_error.hpp"

namespace weft::io::detail {

/// "weft::io::op: path: what", the form of every checkpoint error.
[[noreturn]] void fail(const char* op, const std::filesystem::path& path, std::string_view what);

/// A regular file opened for reading, with positioned reads (no shared file offset).
class InputFile {
 public:
  InputFile(std::filesystem::path path, const char* op);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  /// Exactly out.size() bytes from `offset`; a file that ends first is a DataError.
  void read(std::uint64_t offset, std::span<std::byte> out) const;
  /// The whole file mapped read-only (private mapping); empty for an empty file.
  [[nodiscard]] std::span<const std::byte> map();

  [[noreturn]] void fail(std::string_view what) const { detail::fail(op_, path_, what); }

 private:
  std::filesystem::path path_;
  const char* op_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  void* mapping_ = nullptr;
};

/// A file that appears under its final name complete or not at all. The bytes go to a new file
/// in the same directory (so that the rename below cannot cross file systems); commit() flushes
/// and fsyncs it, renames it over the final name and fsyncs the directory, so that the rename
/// itself survives a power loss. Destroyed without commit(), it removes the temporary file. A
/// process killed before the rename leaves the previous file under the final name (and a
/// ".NAME.tmp-*" file beside it, which the next save does not reuse).
class AtomicFile {
 public:
  AtomicFile(std::filesystem::path path, const char* op);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends bytes (buffered; large spans are written directly).
  void write(std::span<const std::byte> bytes);
  void write(std::string_view text) { write(std::as_bytes(std::span(text.data(), text.size()))); }
  /// The packer interface of msgpack-cxx (msgpack::packer<AtomicFile>).
  void write(const char* data, std::size_t size) { write(std::string_view(data, size)); }
  void commit();

  [[noreturn]] void fail(std::string_view what) const { detail::fail(op_, path_, what); }

 private:
  void flush();
  std::filesystem::path path_, temp_;
  const char* op_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
};

/// fsync of a directory, so that the entries just renamed or removed in it are durable.
void sync_directory(const std::filesystem::path& dir, const char* op);

}  // namespace weft::io::detail
