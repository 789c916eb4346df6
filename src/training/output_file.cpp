#include "output_file.hpp"

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <system_error>
#include <utility>

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
    throw io::DataError(std::string(op) + ": " + path.string() + ": cannot create the directory " + parent.string() +
                        " (" + ec.message() + "); give a directory this process may write");
}

}  // namespace

void OutputFile::fail(const char* op, const fs::path& path, std::string_view what) {
  throw io::DataError(std::string(op) + ": " + path.string() + ": " + std::string(what));
}

OutputFile OutputFile::append(fs::path path, const char* op) {
  create_parent(path, op);
  std::FILE* file = std::fopen(path.c_str(), "ab");
  if (file == nullptr)
    fail(op, path, std::string("cannot open it for writing (") + std::strerror(errno) +
                       "); give a file in a directory this process may write");
  return {std::move(path), op, file};
}

std::optional<OutputFile> OutputFile::create_new(fs::path path, const char* op) {
  create_parent(path, op);
  std::FILE* file = std::fopen(path.c_str(), "wbx");  // x: fails with EEXIST instead of truncating
  if (file == nullptr) {
    if (errno == EEXIST) return std::nullopt;
    fail(op, path, std::string("cannot create it (") + std::strerror(errno) +
                       "); give a directory this process may write");
  }
  return OutputFile(std::move(path), op, file);
}

void OutputFile::write(std::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_.get()) != bytes.size() || std::fflush(file_.get()) != 0)
    fail(op_, path_, std::string("the write failed (") + std::strerror(errno) + "); is the disk full?");
}

void check_scalars(const char* op, const Scalars& scalars, bool step_is_reserved) {
  std::set<std::string_view> seen;
  for (const auto& [name, value] : scalars) {
    if (name.empty()) throw ValueError(std::string(op) + ": a scalar has an empty name; name every value");
    if (step_is_reserved && name == "step")
      throw ValueError(std::string(op) + ": a scalar is named \"step\", the key of the step itself; rename it");
    if (!seen.insert(name).second)
      throw ValueError(std::string(op) + ": the scalar " + weft::detail::quoted(name) +
                       " is given twice in one step; give each name once");
  }
}

}  // namespace weft::training::detail
