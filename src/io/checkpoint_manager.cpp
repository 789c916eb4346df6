#include "weft/io/checkpoint_manager.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <random>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "../format.hpp"
#include "file.hpp"

namespace weft::io {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kStepPrefix = "step_";
constexpr std::string_view kLatest = "latest";
constexpr std::string_view kFile = "checkpoint.safetensors";
/// Entries of interrupted saves and deletions start with this (".step_000100.tmp-123").
constexpr std::string_view kLeftoverPrefix = ".step_";
/// The temporary files of AtomicFile replacing `latest`.
constexpr std::string_view kLatestLeftoverPrefix = ".latest.tmp-";

std::string step_name(std::int64_t step) {
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "%06lld", static_cast<long long>(step));
  return std::string(kStepPrefix) + buf.data();
}

/// The step of a directory name "step_000100", or nullopt.
std::optional<std::int64_t> parse_step(std::string_view name) {
  if (!name.starts_with(kStepPrefix)) return std::nullopt;
  const std::string_view digits = name.substr(kStepPrefix.size());
  if (digits.empty() || !std::ranges::all_of(digits, [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  std::int64_t step = 0;
  const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (err != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return step;
}

/// ".NAME.KIND-RANDOM": an entry no step or pointer is named like, for a save or deletion under way.
std::string hidden_name(std::string_view name, std::string_view kind) {
  std::string out = ".";
  out += name;
  out += '.';
  out += kind;
  out += '-';
  out += std::to_string(std::random_device{}());
  return out;
}

void remove_or_fail(const fs::path& path, const char* op) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) detail::fail(op, path, fmt::format("cannot be removed ({})", ec.message()));
}

}  // namespace

CheckpointManager::CheckpointManager(fs::path directory, CheckpointManagerOptions options)
    : directory_(std::move(directory)), options_(options) {
  if (options_.max_to_keep < 1)
    throw ValueError(
        fmt::format("weft::io::CheckpointManager: max_to_keep is {}; keep at least 1 step", options_.max_to_keep));
}

fs::path CheckpointManager::step_directory(std::int64_t step) const { return directory_ / step_name(step); }

std::optional<std::int64_t> CheckpointManager::latest_step() const {
  const fs::path path = directory_ / kLatest;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const detail::InputFile file(path, "CheckpointManager::latest_step");
  if (file.size() > 64) file.fail("is not a checkpoint pointer (more than 64 bytes); it should hold a name such as step_000100");
  std::string text(file.size(), '\0');
  file.read(0, std::as_writable_bytes(std::span(text)));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const auto step = parse_step(text);
  if (!step) file.fail(fmt::format("holds {} instead of a step directory name such as step_000100",
                                   weft::detail::quoted(text)));
  if (!fs::is_directory(step_directory(*step), ec))
    file.fail(fmt::format("names {}, which is not in {}; the directory was changed by hand",
                          text, directory_.string()));
  return step;
}

std::vector<std::int64_t> CheckpointManager::all_steps() const {
  const auto latest = latest_step();
  std::vector<std::int64_t> steps;
  if (!latest) return steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory_, ec)) {
    const auto step = parse_step(entry.path().filename().string());
    // Steps above `latest` are saves that were interrupted before they were published.
    if (step && *step <= *latest && entry.is_directory(ec)) steps.push_back(*step);
  }
  if (ec) detail::fail("CheckpointManager::all_steps", directory_, fmt::format("cannot be listed ({})", ec.message()));
  std::ranges::sort(steps);
  return steps;
}

void CheckpointManager::save(std::int64_t step, const Checkpoint& checkpoint) const {
  constexpr const char* op = "CheckpointManager::save";
  if (step < 0) throw ValueError(fmt::format("weft::io::CheckpointManager::save: step {} is negative", step));
  const auto latest = latest_step();
  if (latest && step <= *latest)
    throw ValueError(fmt::format("weft::io::CheckpointManager::save: step {} is not above the latest step {} in {}; "
                                 "steps must increase",
                                 step, *latest, directory_.string()));
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec) detail::fail(op, directory_, fmt::format("cannot be created ({})", ec.message()));
  // Leftovers of interrupted saves and deletions: temporary entries, and this very step renamed but
  // not yet published (complete steps of other numbers stay: they are whole, only unpublished).
  const std::string name = step_name(step);
  for (const auto& entry : fs::directory_iterator(directory_, ec)) {
    const std::string entry_name = entry.path().filename().string();
    if (entry_name.starts_with(kLeftoverPrefix) || entry_name.starts_with(kLatestLeftoverPrefix) || entry_name == name)
      remove_or_fail(entry.path(), op);
  }
  if (ec) detail::fail(op, directory_, fmt::format("cannot be listed ({})", ec.message()));

  const fs::path temp = directory_ / hidden_name(name, "tmp");
  fs::create_directory(temp, ec);
  if (ec) detail::fail(op, temp, fmt::format("cannot be created ({})", ec.message()));
  save_safetensors(temp / kFile, checkpoint.variables, checkpoint.metadata);  // flushes the file and `temp`
  fs::rename(temp, directory_ / name, ec);
  if (ec) detail::fail(op, directory_ / name, fmt::format("cannot be put in place ({})", ec.message()));
  detail::sync_directory(directory_, op);
  detail::AtomicFile pointer(directory_ / kLatest, op);
  pointer.write(name + "\n");
  pointer.commit();

  // Old steps go out of sight by a rename first, so that a killed deletion leaves no partial step.
  auto steps = all_steps();
  if (steps.size() <= static_cast<std::size_t>(options_.max_to_keep)) return;
  steps.resize(steps.size() - static_cast<std::size_t>(options_.max_to_keep));
  for (const std::int64_t old : steps) {
    const fs::path doomed = directory_ / hidden_name(step_name(old), "deleting");
    fs::rename(step_directory(old), doomed, ec);
    if (ec) detail::fail(op, step_directory(old), fmt::format("cannot be removed ({})", ec.message()));
    detail::sync_directory(directory_, op);
    remove_or_fail(doomed, op);
  }
}

Checkpoint CheckpointManager::restore(std::int64_t step) const {
  const fs::path path = step_directory(step) / kFile;
  return {load_safetensors(path), load_safetensors_metadata(path)};
}

}  // namespace weft::io
