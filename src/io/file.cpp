// POSIX file access for the checkpoint formats: positioned reads, read-only mappings, and
// atomic, durable replacement of a file (write a temporary, fsync, rename, fsync the directory).
#include "file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace weft::io::detail {

namespace fs = std::filesystem;

namespace {

/// Writes smaller than this are gathered; larger ones (tensor data) go to the file directly.
constexpr std::size_t kBufferBytes = std::size_t{1} << 16;

std::string errno_text(int err) { return std::generic_category().message(err); }

}  // namespace

void fail(const char* op, const fs::path& path, std::string_view what) {
  throw DataError(fmt::format("weft::io::{}: {}: {}", op, path.string(), what));
}

// ---------------------------------------------------------------- reading

InputFile::InputFile(fs::path path, const char* op) : path_(std::move(path)), op_(op) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    fail(err == ENOENT ? std::string("no such file; check the path")
                       : fmt::format("cannot be opened ({})", errno_text(err)));
  }
  struct stat st {};
  const int stat_error = ::fstat(fd_, &st) == 0 ? 0 : errno;
  if (stat_error != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);  // the destructor does not run for a constructor that throws
    if (stat_error != 0) fail(fmt::format("cannot read its size ({})", errno_text(stat_error)));
    fail(S_ISDIR(st.st_mode) ? "is a directory, not a file; pass the path of the file inside it"
                             : "is not a regular file");
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read(std::uint64_t offset, std::span<std::byte> out) const {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t got = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(fmt::format("cannot be read ({})", errno_text(errno)));
    if (got == 0)
      fail(fmt::format("ends at byte {} while {} more bytes were expected; the file is truncated (or was changed while "
                       "it was read)",
                       offset + done, out.size() - done));
    done += static_cast<std::size_t>(got);
  }
}

std::span<const std::byte> InputFile::map() {
  if (size_ == 0) return {};
  if (mapping_ == nullptr) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) fail(fmt::format("cannot be mapped into memory ({})", errno_text(errno)));
    mapping_ = p;
  }
  return {static_cast<const std::byte*>(mapping_), size_};
}

// ---------------------------------------------------------------- atomic writing

AtomicFile::AtomicFile(fs::path path, const char* op) : path_(std::move(path)), op_(op) {
  if (path_.filename().empty()) fail("is not a file name; give the path of the file to write");
  const fs::path dir = path_.parent_path().empty() ? fs::path(".") : path_.parent_path();
  std::random_device random;
  for (int attempt = 0; fd_ < 0; ++attempt) {
    std::string name = ".";
    name += path_.filename().string();
    name += ".tmp-";
    name += std::to_string(random());
    temp_ = dir / name;
    // 0666 as any new file (the umask applies), so that the renamed file has the usual mode.
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100)) {
      const int err = errno;
      fail(fmt::format("cannot create a temporary file in {} ({}){}",
                       dir.string(), errno_text(err), (err == ENOENT ? "; create the directory first" : "")));
    }
  }
  buffer_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

void AtomicFile::write(std::span<const std::byte> bytes) {
  if (buffer_.size() + bytes.size() <= kBufferBytes) {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    return;
  }
  flush();
  if (bytes.size() < kBufferBytes) {
    buffer_.assign(bytes.begin(), bytes.end());
    return;
  }
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t put = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) fail(fmt::format("cannot be written ({})", errno_text(errno)));
    done += static_cast<std::size_t>(put);
  }
}

void AtomicFile::flush() {
  std::vector<std::byte> pending;
  pending.swap(buffer_);
  buffer_.reserve(kBufferBytes);
  for (std::size_t done = 0; done < pending.size();) {
    const ssize_t put = ::write(fd_, pending.data() + done, pending.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) fail(fmt::format("cannot be written ({})", errno_text(errno)));
    done += static_cast<std::size_t>(put);
  }
}

void AtomicFile::commit() {
  flush();
  if (::fsync(fd_) != 0) fail(fmt::format("cannot be flushed to disk ({})", errno_text(errno)));
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    fail(fmt::format("cannot be closed ({})", errno_text(err)));
  }
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    fail(fmt::format("cannot be put in place (rename from {}: {})", temp_.filename().string(), errno_text(err)));
  }
  sync_directory(path_.parent_path().empty() ? fs::path(".") : path_.parent_path(), op_);
}

void sync_directory(const fs::path& dir, const char* op) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(op, dir, fmt::format("cannot open the directory to flush it ({})", errno_text(errno)));
  const int synced = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (synced != 0) fail(op, dir, fmt::format("cannot flush the directory to disk ({})", errno_text(err)));
}

}  // namespace weft::io::detail
