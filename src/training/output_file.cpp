#include "output_file.hpp"

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "../format.hpp"
#include "weft/io/data_error.hpp"

namespace weft::training::detail {

namespace fs = std::filesystem;

namespace {

void create_parent(const fs::path& path, const char* op) {
  const fs::path parent = path.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    throw io::DataError(fmt::format("{}: {}: cannot create the directory {} ({}); give a "
                                    "directory this process may write",
                                    op, path.string(), parent.string(), ec.message()));
}

}  // namespace

void OutputFile::fail(const char* op, const fs::path& path, std::string_view what) {
  throw io::DataError(fmt::format("{}: {}: {}", op, path.string(), what));
}

OutputFile OutputFile::append(fs::path path, const char* op) {
  create_parent(path, op);
  std::FILE* file = std::fopen(path.c_str(), "ab");
  if (file == nullptr)
    fail(op, path, fmt::format("cannot open it for writing ({}); give a file in a directory this process may write",
                               std::strerror(errno)));
  return {std::move(path), op, file};
}

std::optional<OutputFile> OutputFile::create_new(fs::path path, const char* op) {
  create_parent(path, op);
  std::FILE* file = std::fopen(path.c_str(), "wbx");  // x: fails with EEXIST instead of truncating
  if (file == nullptr) {
    if (errno == EEXIST) return std::nullopt;
    fail(op, path, fmt::format("cannot create it ({}); give a directory this process may write", std::strerror(errno)));
  }
  return OutputFile(std::move(path), op, file);
}

void OutputFile::write(std::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_.get()) != bytes.size() || std::fflush(file_.get()) != 0)
    fail(op_, path_, fmt::format("the write failed ({}); is the disk full?", std::strerror(errno)));
}

void check_scalars(const char* op, const Scalars& scalars, bool step_is_reserved) {
  std::set<std::string_view> seen;
  for (const auto& [name, value] : scalars) {
    if (name.empty()) throw ValueError(fmt::format("{}: a scalar has an empty name; name every value", op));
    if (step_is_reserved && name == "step")
      throw ValueError(fmt::format("{}: a scalar is named \"step\", the key of the step itself; rename it", op));
    if (!seen.insert(name).second)
      throw ValueError(fmt::format("{}: the scalar {} is given twice in one step; give each name once",
                                   op, weft::detail::quoted(name)));
  }
}

}  // namespace weft::training::detail
