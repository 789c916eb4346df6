// weft::io::CheckpointManager, and the kill test: a child process saves in a loop and is killed
// with SIGKILL at random moments; each time, every final name holds a complete checkpoint.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint_testing.hpp"
#include "temp_dir.hpp"
#include "testing.hpp"
#include "weft/io/checkpoint_manager.hpp"
#include "weft/io/flax_msgpack.hpp"

extern char** environ;

using namespace weft;
using namespace weft::testing;
namespace fs = std::filesystem;

namespace {

io::Checkpoint small(float value) {
  return {Variables::from_leaves({{"params/w", full({2, 2}, value)}}), {{"value", std::to_string(value)}}};
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::ranges::sort(names);
  return names;
}

}  // namespace

TEST_CASE("checkpoint manager: keeps the newest steps, points `latest` at the last one, restores any kept step") {
  TempDir dir;
  const io::CheckpointManager manager(dir / "run", {.max_to_keep = 2});
  CHECK_FALSE(manager.latest_step().has_value());
  CHECK(manager.all_steps().empty());
  for (const std::int64_t step : {100, 200, 300, 1234567}) manager.save(step, small(static_cast<float>(step)));
  CHECK(manager.latest_step() == 1234567);
  CHECK(manager.all_steps() == std::vector<std::int64_t>{300, 1234567});
  CHECK(names_in(dir / "run") == std::vector<std::string>{"latest", "step_000300", "step_1234567"});
  CHECK(names_in(dir / "run/step_000300") == std::vector<std::string>{"checkpoint.safetensors"});
  std::ifstream latest(dir / "run/latest");
  CHECK(std::string(std::istreambuf_iterator<char>(latest), {}) == "step_1234567\n");
  const io::Checkpoint restored = manager.restore(300);
  check_identical(restored.variables, small(300).variables);
  CHECK(restored.metadata == small(300).metadata);
  CHECK(manager.step_directory(7) == dir / "run/step_000007");
}

TEST_CASE("checkpoint manager: wrong steps and options are errors, leftovers of killed saves are ignored and removed") {
  TempDir dir;
  const io::CheckpointManager manager(dir.path());
  manager.save(5, small(5));
  check_throws_with<ValueError>([&] { manager.save(5, small(5)); }, {"step 5 is not above the latest step 5", "steps must increase"});
  check_throws_with<ValueError>([&] { manager.save(4, small(4)); }, {"step 4 is not above the latest step 5"});
  check_throws_with<ValueError>([&] { manager.save(-1, small(1)); }, {"step -1 is negative"});
  check_throws_with<ValueError>([&] { (void)io::CheckpointManager(dir.path(), {.max_to_keep = 0}); }, {"max_to_keep is 0"});
  check_throws_with<io::DataError>([&] { (void)manager.restore(6); }, {"step_000006", "no such file"});
  // What a killed save leaves: a temporary step directory, a step renamed but not yet published,
  // a temporary pointer. None of them counts, and the next save removes them.
  fs::create_directory(dir / ".step_000006.tmp-1");
  fs::create_directory(dir / "step_000006");
  std::ofstream(dir / ".latest.tmp-2") << "step_000006\n";
  CHECK(manager.latest_step() == 5);
  CHECK(manager.all_steps() == std::vector<std::int64_t>{5});
  manager.save(6, small(6));
  CHECK(names_in(dir.path()) == std::vector<std::string>{"latest", "step_000005", "step_000006"});
  check_identical(manager.restore(6).variables, small(6).variables);
  // A pointer changed by hand is a clear error.
  std::ofstream(dir / "latest") << "step_000099\n";
  check_throws_with<io::DataError>([&] { (void)manager.latest_step(); }, {"latest", "names step_000099", "changed by hand"});
  std::ofstream(dir / "latest") << "garbage";
  check_throws_with<io::DataError>([&] { (void)manager.latest_step(); }, {"holds \"garbage\""});
  // Without a pointer nothing is published, but the next save deletes no complete step.
  fs::remove(dir / "latest");
  CHECK(manager.all_steps().empty());
  manager.save(7, small(7));
  CHECK(manager.all_steps() == std::vector<std::int64_t>{5, 6, 7});
}

TEST_CASE("checkpoint kill test: a save killed at any moment leaves the previous checkpoint or the new one") {
  TempDir dir;
  const io::CheckpointManager manager(dir / "managed", {.max_to_keep = 2});
  {  // A first complete checkpoint under every name, so that there is always a previous one.
    const auto [variables, metadata] = kill_test_checkpoint(0);
    io::save_safetensors(dir / "plain.safetensors", variables, metadata);
    io::save_flax_msgpack(dir / "plain.msgpack", variables);
    manager.save(0, {variables, metadata});
  }
  std::mt19937 random(20240601);
  std::int64_t last = 0, last_managed = 0, new_steps = 0;
  constexpr int kRounds = 60;
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    const std::string first = std::to_string(last + 1);
    std::vector<std::string> args{WEFT_CHECKPOINT_TOOL, "save-loop", dir.path().string(), first};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
    // Kill times spread over the child's start-up and its first saves (a save cycle takes tens of ms).
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 150000)(random)));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    // Killed, not exited: a child that stopped by itself (an error) would not test anything.
    REQUIRE(WIFSIGNALED(status));
    const Variables plain = io::load_safetensors(dir / "plain.safetensors");
    const std::int64_t step = std::stoll(io::load_safetensors_metadata(dir / "plain.safetensors").at("step"));
    check_kill_test_checkpoint(plain, step);
    const Variables msgpack = io::load_flax_msgpack(dir / "plain.msgpack");
    check_kill_test_checkpoint(msgpack, static_cast<std::int64_t>(msgpack.at("state/step").to_int_vector()[0]));
    const auto latest = manager.latest_step();
    REQUIRE(latest.has_value());
    CHECK(*latest >= last_managed);
    const io::Checkpoint managed = manager.restore(*latest);
    CHECK(std::stoll(managed.metadata.at("step")) == *latest);
    check_kill_test_checkpoint(managed.variables, *latest);
    new_steps += *latest > last_managed ? 1 : 0;
    last_managed = *latest;
    last = std::max(last, step);  // the plain files are saved first, so they are never behind the manager
  }
  MESSAGE("kill test: " << kRounds << " kills, " << new_steps << " of them after new managed steps, last step " << last);
  CHECK(new_steps > 0);
}
