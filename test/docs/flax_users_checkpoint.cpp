#include <filesystem>
#include <iostream>

#include <weft/weft.hpp>
using namespace weft;

int main() {
  const nn::Dense model{.features = 4};
  const Tensor x = ones(Shape{2, 3});
  const Variables variables = nn::init(model, Key(0), x);
  const auto dir = std::filesystem::temp_directory_path() / "weft-flax-users-checkpoint";

  // flax.serialization.to_bytes / from_bytes: the same msgpack files, both ways.
  std::filesystem::create_directories(dir);
  io::save_flax_msgpack(dir / "params.msgpack", variables);
  const Variables loaded = io::restore(variables, io::load_flax_msgpack(dir / "params.msgpack"));

  // Orbax's CheckpointManager: step directories, max_to_keep, atomic saves, restore the latest.
  const io::CheckpointManager manager(dir / "run", {.max_to_keep = 2});
  for (std::int64_t step : {100, 200, 300}) manager.save(step, {variables, {{"note", "step " + std::to_string(step)}}});
  const std::int64_t latest = manager.latest_step().value();
  const io::Checkpoint restored = manager.restore(latest);
  std::cout << "latest step " << latest << " of " << manager.all_steps().size() << " kept, note \""
            << restored.metadata.at("note") << "\"\n";
  const bool same = nn::apply(model, loaded, x).to_vector() == nn::apply(model, variables, x).to_vector();
  std::filesystem::remove_all(dir);
  return same && latest == 300 ? 0 : 1;
}
