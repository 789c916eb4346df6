#include "weft/io/training_state.hpp"

#include <charconv>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "../format.hpp"

namespace weft::io {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kVariables = "variables", kOptState = "opt_state";
constexpr std::string_view kReserved = "weft.";
constexpr const char* kStepKey = "weft.step";
/// The key's words, and its threefry layout ("partitionable" or "classic") in a field of its own.
constexpr const char* kRngKey = "weft.rng_key";
constexpr const char* kRngLayoutKey = "weft.rng_key_layout";

std::string layout_name(ThreefryLayout layout) {
  return layout == ThreefryLayout::partitionable ? "partitionable" : "classic";
}

[[noreturn]] void malformed(const std::string& what) {
  throw DataError(fmt::format("weft::io::from_checkpoint: {}; the checkpoint was not written by "
                              "io::to_checkpoint (or save_training_state)", what));
}

template <class T>
T parse_number(std::string_view text, const char* key) {
  T value{};
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc() || end != text.data() + text.size() || text.empty())
    malformed(fmt::format("its metadata {} is {}, not a number", key, weft::detail::quoted(text)));
  return value;
}

const std::string& field(const SafetensorsMetadata& metadata, const char* key) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) malformed(std::string("its metadata has no ") + key);
  return it->second;
}

}  // namespace

Checkpoint to_checkpoint(const TrainingState& state) {
  Checkpoint out{state.variables.prefixed(kVariables).merge(state.opt_state.prefixed(kOptState)), {}};
  for (const auto& [key, value] : state.metadata) {
    if (key.starts_with(kReserved))
      throw ValueError(fmt::format("weft::io::to_checkpoint: metadata key {} starts with \"weft.\", "
                                   "which weft keeps for its own fields; rename it", weft::detail::quoted(key)));
    out.metadata.emplace(key, value);
  }
  const auto words = state.rng.words();
  out.metadata[kStepKey] = std::to_string(state.step);
  out.metadata[kRngKey] = std::to_string(words[0]) + "," + std::to_string(words[1]);
  out.metadata[kRngLayoutKey] = layout_name(state.rng.layout());
  return out;
}

TrainingState from_checkpoint(const Checkpoint& checkpoint) {
  TrainingState state;
  for (const std::string& collection : checkpoint.variables.collections())
    if (collection != kVariables && collection != kOptState)
      malformed(fmt::format("it holds tensors under {}, not only under \"variables\" and \"opt_state\"",
                            weft::detail::quoted(collection)));
  state.variables = checkpoint.variables.unprefixed(kVariables);
  state.opt_state = checkpoint.variables.unprefixed(kOptState);
  state.step = parse_number<std::int64_t>(field(checkpoint.metadata, kStepKey), kStepKey);
  const std::string& key = field(checkpoint.metadata, kRngKey);
  const auto comma = key.find(',');
  if (comma == std::string::npos)
    malformed(fmt::format("its metadata {} is {}, not two words", kRngKey, weft::detail::quoted(key)));
  const std::string& layout = field(checkpoint.metadata, kRngLayoutKey);
  if (layout != layout_name(ThreefryLayout::partitionable) && layout != layout_name(ThreefryLayout::classic))
    malformed(fmt::format("its metadata {} is {}, not \"partitionable\" or \"classic\"",
                          kRngLayoutKey, weft::detail::quoted(layout)));
  state.rng = Key::from_words({parse_number<std::uint32_t>(std::string_view(key).substr(0, comma), kRngKey),
                               parse_number<std::uint32_t>(std::string_view(key).substr(comma + 1), kRngKey)},
                              layout == layout_name(ThreefryLayout::classic) ? ThreefryLayout::classic
                                                                              : ThreefryLayout::partitionable);
  for (const auto& [k, v] : checkpoint.metadata)
    if (!k.starts_with(kReserved)) state.metadata.emplace(k, v);
  return state;
}

void save_training_state(const fs::path& path, const TrainingState& state) {
  const Checkpoint checkpoint = to_checkpoint(state);
  save_safetensors(path, checkpoint.variables, checkpoint.metadata);
}

TrainingState load_training_state(const fs::path& path) {
  try {
    return from_checkpoint({load_safetensors(path), load_safetensors_metadata(path)});
  } catch (const DataError& e) {
    const std::string what = e.what();
    if (!what.starts_with("weft::io::from_checkpoint")) throw;
    throw DataError(fmt::format("weft::io::load_training_state: {}: {}",
                                path.string(), what.substr(what.find(": ") + 2)));
  }
}

}  // namespace weft::io
