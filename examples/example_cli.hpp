#pragma once
// What the Fashion-MNIST examples (flax-mnist, transformer-classifier, checkpoint-resume) share:
// their command-line reading, in weft-train's style (every mistake named with its fix, exit status
// 2), and the loading of the data with the checks that make a wrong --data-dir or
// --train-examples show at once rather than as an error from deep inside an op.
#include <omp.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "weft/io/fashion_mnist.hpp"
#include "weft/weft.hpp"

namespace examples {

/// A mistake in the command line or the data it names: the message, and where to read more.
[[noreturn]] inline void usage_error(std::string_view program, const std::string& message) {
  std::cerr << program << ": " << message << "\n(see " << program << " --help)\n";
  std::exit(2);
}

/// Reads `--name VALUE` options and `--flag`s from argv, one at a time. --help prints the usage.
class Arguments {
 public:
  Arguments(std::string_view program, std::string_view usage, int argc, char** argv)
      : program_(program), usage_(usage), argc_(argc), argv_(argv) {}

  /// The next option's name ("--epochs"), or nullopt after the last.
  std::optional<std::string_view> next() {
    if (++i_ >= argc_) return std::nullopt;
    option_ = argv_[i_];
    if (option_ == "--help" || option_ == "-h") {
      std::cout << usage_;
      std::exit(0);
    }
    if (!option_.starts_with("--"))
      error("unexpected argument '" + std::string(option_) + "'; " + std::string(program_) +
            " takes options only, each written --name VALUE (e.g. --epochs 2)");
    return option_;
  }

  /// The value after the current option.
  std::string value() {
    if (i_ + 1 >= argc_) error("option " + std::string(option_) + " needs a value");
    return argv_[++i_];
  }

  /// The value as an integer of at least `least`.
  template <class Int>
  Int integer(Int least) {
    const std::string v = value();
    Int parsed{};
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (ec == std::errc::result_out_of_range || (ec == std::errc{} && end == v.data() + v.size() && parsed < least))
      error(std::string(option_) + " must be an integer of at least " + std::to_string(least) + ", got " + v);
    if (ec != std::errc{} || end != v.data() + v.size())
      error("bad value '" + v + "' for " + std::string(option_) + "; give an integer such as " + std::to_string(least));
    return parsed;
  }

  /// The value as a number in [least, below).
  float real(float least, float below) {
    const std::string v = value();
    float parsed = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (ec != std::errc{} || end != v.data() + v.size())
      error("bad value '" + v + "' for " + std::string(option_) + "; give a number such as 0.1");
    if (!(parsed >= least && parsed < below))
      error(std::string(option_) + " must be in [" + fmt_number(least) + ", " + fmt_number(below) + "), got " + v);
    return parsed;
  }

  [[noreturn]] void unknown() const { error("unknown option " + std::string(option_)); }

  [[noreturn]] void error(const std::string& message) const { usage_error(program_, message); }

 private:
  static std::string fmt_number(float x) {
    std::string s = std::to_string(x);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.ends_with('.')) s.pop_back();
    return s;
  }

  std::string_view program_, usage_;
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string_view option_;
};

/// 0 leaves OpenMP's default (all cores); results do not depend on it.
inline void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

/// Fashion-MNIST from `data_dir`, its training split cut to the first `train_examples` images
/// (0: all of them). Exits with a message naming the option to fix when the data cannot serve
/// `batch_size`.
inline weft::io::FashionMnist load_data(std::string_view program, const std::string& data_dir,
                                        std::int64_t train_examples, std::int64_t batch_size) {
  const std::string where = " in --data-dir " + data_dir;
  std::error_code ec;
  const auto status = std::filesystem::status(data_dir, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_directory(status))
    usage_error(program, "--data-dir " + data_dir + " is a file, not a directory; pass the directory that holds the four "
               "Fashion-MNIST IDX files (default " + std::string(weft::io::kFashionMnistDir) + ")");
  weft::io::FashionMnist data;
  try {
    data = weft::io::load_fashion_mnist(data_dir);
  } catch (const weft::io::DataError& e) {
    std::cerr << program << ": " << e.what() << "\n(" << program
              << " reads the files from --data-dir, default " << weft::io::kFashionMnistDir << ")\n";
    std::exit(1);
  }
  const std::int64_t available = data.train_images.shape()[0];
  if (data.test_images.shape()[0] == 0)
    usage_error(program, "the test split" + where + " (t10k-images-idx3-ubyte) holds no images; pass a directory with the "
               "complete Fashion-MNIST files");
  if (train_examples > available)
    usage_error(program, "--train-examples " + std::to_string(train_examples) + " asks for more than the " +
               std::to_string(available) + " training images" + where + "; use " + std::to_string(available) +
               " or less");
  const std::int64_t n = train_examples > 0 ? train_examples : available;
  if (n < batch_size)
    usage_error(program, std::to_string(n) + " training images" +
                             (train_examples > 0 ? std::string(" (--train-examples)") : where) + " make no batch of " +
                             std::to_string(batch_size) + " (the last partial batch is dropped, so no step would run); " +
                             (train_examples > 0 ? "use --train-examples " + std::to_string(batch_size) + " or more"
                                                 : "pass a --data-dir with at least " + std::to_string(batch_size) +
                                                       " training images"));
  if (data.train_images.shape()[1] != 28 || data.train_images.shape()[2] != 28 ||
      data.test_images.shape()[1] != 28 || data.test_images.shape()[2] != 28)
    usage_error(program, "the images" + where + " are not 28x28, as Fashion-MNIST's are; the models here are sized for them");
  data.train_images = weft::slice_axis(data.train_images, 0, 0, n);
  data.train_labels = weft::slice_axis(data.train_labels, 0, 0, n);
  return data;
}

}  // namespace examples
