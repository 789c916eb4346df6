#pragma once
// Internal: the file the metric writers append to, and their check of the scalars. Every failure
// is a weft::io::DataError "op: path: what".
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>

#include "weft/training/scalars.hpp"

namespace weft::training::detail {

class OutputFile {
 public:
  /// `path` opened for appending; it and its directory are created when missing.
  [[nodiscard]] static OutputFile append(std::filesystem::path path, const char* op);
  /// A new file at `path` (its directory created when missing); nullopt when `path` exists already.
  [[nodiscard]] static std::optional<OutputFile> create_new(std::filesystem::path path, const char* op);

  /// Writes all of `bytes` and flushes them to the system, so that a reader sees whole records.
  void write(std::string_view bytes);
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  struct Close {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  OutputFile(std::filesystem::path path, const char* op, std::FILE* file) noexcept
      : path_(std::move(path)), op_(op), file_(file) {}
  [[noreturn]] static void fail(const char* op, const std::filesystem::path& path, std::string_view what);
  std::filesystem::path path_;
  const char* op_;
  std::unique_ptr<std::FILE, Close> file_;
};

/// Every name non-empty and given once, and not "step" where `step_is_reserved` (a key of its own in
/// a JSON line); otherwise a weft::ValueError naming it.
void check_scalars(const char* op, const Scalars& scalars, bool step_is_reserved);

}  // namespace weft::training::detail
