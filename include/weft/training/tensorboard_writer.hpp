#pragma once
// weft::training::TensorBoardWriter: scalars as a TensorBoard event file, which `tensorboard
// --logdir DIR` plots while the run writes it:
//
//   training::TensorBoardWriter tb("runs/mlp");     // runs/mlp/events.out.tfevents.<time>.<host>
//   tb.write_scalars(step, {{"train_loss", loss}});
//
// The file is what TensorFlow's tf.summary writes: TFRecord records (a little-endian uint64 length,
// the masked CRC-32C of those 8 bytes, the data, the masked CRC-32C of the data), each holding a
// serialized tensorflow.Event. The first Event has the wall time and file_version "brain.Event:2";
// each write_scalars adds an Event with the wall time, the step and a Summary of one
// Summary.Value{tag, simple_value} per scalar (simple_value is a float32, so values are rounded).
// Each Event is flushed as it is written.
#include <cstdint>
#include <filesystem>
#include <memory>

#include "weft/training/scalars.hpp"

namespace weft::training {

class TensorBoardWriter {
 public:
  /// A new event file in `log_dir` (created when missing), named
  /// `events.out.tfevents.<unix seconds>.<hostname>` (with ".1", ".2", ... added if a writer of the
  /// same second made that name already). A directory that cannot be written is a weft::io::DataError naming it.
  explicit TensorBoardWriter(const std::filesystem::path& log_dir);
  ~TensorBoardWriter();
  TensorBoardWriter(TensorBoardWriter&&) noexcept;
  TensorBoardWriter& operator=(TensorBoardWriter&&) noexcept;

  /// One Event at `step` holding the scalars, each under its name as the tag. An empty name or a
  /// name given twice is a weft::ValueError; a failed write a weft::io::DataError.
  void write_scalars(std::int64_t step, const Scalars& scalars);

  /// The event file.
  [[nodiscard]] const std::filesystem::path& path() const noexcept;

 private:
  struct File;
  std::unique_ptr<File> file_;
};

}  // namespace weft::training
