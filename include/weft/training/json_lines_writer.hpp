#pragma once
// weft::training::JsonLinesWriter: scalars as JSON Lines, one object per step, as clu's metric
// writers write them:
//
//   {"step":100,"train_loss":0.4312}
//   {"step":468,"test_accuracy":0.8816}
//
// In Python: [json.loads(line) for line in open("metrics.jsonl")], or pandas.read_json(path, lines=True).
// Each line is written whole and flushed, so a run killed at any moment leaves complete lines
// (except, at worst, the last), and a file being written can be read at any time.
#include <cstdint>
#include <filesystem>
#include <memory>

#include "weft/training/scalars.hpp"

namespace weft::training {

class JsonLinesWriter {
 public:
  /// Appends to `path`, so that a resumed run continues its file; the file and its directory are
  /// created when missing. A file that cannot be opened is a weft::io::DataError naming it.
  explicit JsonLinesWriter(std::filesystem::path path);
  ~JsonLinesWriter();
  JsonLinesWriter(JsonLinesWriter&&) noexcept;
  JsonLinesWriter& operator=(JsonLinesWriter&&) noexcept;

  /// One line {"step": step, name: value, ...}, the names in the order given. Non-finite values are
  /// written as null (JSON has no NaN). An empty name, a name given twice, or the name "step" is a
  /// weft::ValueError; a failed write a weft::io::DataError.
  void write_scalars(std::int64_t step, const Scalars& scalars);

  [[nodiscard]] const std::filesystem::path& path() const noexcept;

 private:
  struct File;
  std::unique_ptr<File> file_;
};

}  // namespace weft::training
