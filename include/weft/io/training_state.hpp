#pragma once
// weft::io::TrainingState: everything a training run needs to continue where it stopped (the
// model's variables, the optimizer's state, the step, the random key and the user's metadata),
// saved and restored as one unit.
//
//   io::save_training_state("run.safetensors", {variables, opt_state, step, key, {{"epoch", "3"}}});
//   const io::TrainingState s = io::load_training_state("run.safetensors");
//   variables = io::restore(variables, s.variables);
//   opt_state = io::restore(optimizer.init(variables.collection("params")), s.opt_state);
//
// Every weft optimizer keeps its state as a Variables (optim/transform.hpp), so one encoding
// serves them all: the file is a safetensors file whose tensors are "variables/<path>" and
// "opt_state/<path>", and whose metadata holds the user's entries and weft's own, named "weft.*":
// weft.step (decimal), weft.rng_key (the key's two 32-bit words, decimal, comma-separated) and
// weft.rng_key_layout (its threefry layout: "partitionable" or "classic").
#include <cstdint>
#include <filesystem>

#include "weft/io/checkpoint_manager.hpp"
#include "weft/io/safetensors.hpp"
#include "weft/random.hpp"
#include "weft/variables.hpp"

namespace weft::io {

struct TrainingState {
  Variables variables;            // params, batch_stats, ...
  Variables opt_state;            // GradientTransformation::init's tree, as updated
  std::int64_t step = 0;          // updates made so far
  Key rng{0};                     // the run's random key
  SafetensorsMetadata metadata;   // the user's entries; keys starting with "weft." are weft's own
};

/// The checkpoint that holds `state`. A user metadata key starting with "weft." is a weft::ValueError.
[[nodiscard]] Checkpoint to_checkpoint(const TrainingState& state);
/// The state a checkpoint of to_checkpoint holds; a DataError when weft's fields are missing or
/// malformed (a checkpoint that is not a training state).
[[nodiscard]] TrainingState from_checkpoint(const Checkpoint& checkpoint);

/// to_checkpoint saved as one safetensors file (atomically, as save_safetensors).
void save_training_state(const std::filesystem::path& path, const TrainingState& state);
[[nodiscard]] TrainingState load_training_state(const std::filesystem::path& path);

}  // namespace weft::io
