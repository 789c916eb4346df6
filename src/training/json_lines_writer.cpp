// JSON Lines through nlohmann::ordered_json, so that the keys keep the order they were given in.
#include "weft/training/json_lines_writer.hpp"

#include <nlohmann/json.hpp>
#include <utility>

#include "output_file.hpp"

namespace weft::training {

namespace {

constexpr const char* kOp = "weft::training::JsonLinesWriter";

}  // namespace

struct JsonLinesWriter::File {
  detail::OutputFile out;
};

JsonLinesWriter::JsonLinesWriter(std::filesystem::path path)
    : file_(std::make_unique<File>(File{detail::OutputFile::append(std::move(path), kOp)})) {}
JsonLinesWriter::~JsonLinesWriter() = default;
JsonLinesWriter::JsonLinesWriter(JsonLinesWriter&&) noexcept = default;
JsonLinesWriter& JsonLinesWriter::operator=(JsonLinesWriter&&) noexcept = default;

void JsonLinesWriter::write_scalars(std::int64_t step, const Scalars& scalars) {
  detail::check_scalars(kOp, scalars, /*step_is_reserved=*/true);
  nlohmann::ordered_json line;
  line["step"] = step;
  for (const auto& [name, value] : scalars) line[name] = value;  // NaN and infinities dump as null
  // Names that are not UTF-8 are written with U+FFFD instead of failing the run.
  file_->out.write(line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
}

const std::filesystem::path& JsonLinesWriter::path() const noexcept { return file_->out.path(); }

}  // namespace weft::training
