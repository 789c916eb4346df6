#pragma once
// weft::io::restore: a loaded tree checked against the tree a model expects, as
// flax.serialization.from_state_dict restores a state dict into a target.
#include "weft/io/data_error.hpp"
#include "weft/variables.hpp"

namespace weft::io {

/// `loaded` once it is known to fit `target`: the same paths, and at every path the same shape and
/// dtype. Otherwise one DataError that names every difference: the paths missing from `loaded`,
/// the unexpected ones, and each shape or dtype that disagrees ("target (3, 4) vs loaded (4, 3)").
/// The target's tensors serve only as the template (e.g. a freshly initialised model's variables).
[[nodiscard]] Variables restore(const Variables& target, const Variables& loaded);

}  // namespace weft::io
