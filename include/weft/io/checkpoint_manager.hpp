#pragma once
// weft::io::CheckpointManager: a directory of numbered checkpoints, as Orbax's CheckpointManager
// keeps them: one directory per step (step_000100/), the newest N kept, and a `latest` file
// naming the newest complete one.
//
//   io::CheckpointManager manager("runs/mlp", {.max_to_keep = 3});
//   manager.save(step, {variables, {{"epoch", "3"}}});
//   if (auto step = manager.latest_step()) variables = manager.restore(*step).variables;
//
// A save cannot leave a partial checkpoint behind: the step is written into a temporary directory,
// each file flushed to disk, the directory renamed to step_NNNNNN and the directory flushed; then
// `latest` is replaced atomically. A process killed at any moment leaves `latest` naming the
// previous complete step or the new one. One process saves into a directory at a time (as Orbax);
// the temporary leftovers of a killed save are removed by the next save.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "weft/io/safetensors.hpp"
#include "weft/variables.hpp"

namespace weft::io {

/// What one step of a checkpoint directory holds: a tree and free-form metadata, saved together
/// in one safetensors file (step_NNNNNN/checkpoint.safetensors).
struct Checkpoint {
  Variables variables;
  SafetensorsMetadata metadata;
};

struct CheckpointManagerOptions {
  /// The newest steps kept; older ones are deleted after each save (Orbax's max_to_keep). At least 1.
  int max_to_keep = 3;
};

class CheckpointManager {
 public:
  /// Manages `directory` (created by the first save). max_to_keep below 1 is a weft::ValueError.
  explicit CheckpointManager(std::filesystem::path directory, CheckpointManagerOptions options = {});

  /// Saves `checkpoint` as step `step`, makes it the latest, and deletes the steps beyond
  /// max_to_keep. A negative step, or one not above the latest step, is a weft::ValueError; a
  /// file that cannot be written a DataError.
  void save(std::int64_t step, const Checkpoint& checkpoint) const;

  /// The step `latest` names, or nullopt when nothing has been saved yet. A `latest` that is
  /// corrupt or names a missing step is a DataError.
  [[nodiscard]] std::optional<std::int64_t> latest_step() const;
  /// The complete steps in the directory, oldest first.
  [[nodiscard]] std::vector<std::int64_t> all_steps() const;
  /// The checkpoint of `step`; a DataError when it is missing or corrupt.
  [[nodiscard]] Checkpoint restore(std::int64_t step) const;
  /// The directory of `step`: directory/step_000100 (six digits at least).
  [[nodiscard]] std::filesystem::path step_directory(std::int64_t step) const;

  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return directory_; }

 private:
  std::filesystem::path directory_;
  CheckpointManagerOptions options_;
};

}  // namespace weft::io
