#include "weft/io/fashion_mnist.hpp"

#include <algorithm>
#include <future>
#include <string>

#include <fmt/format.h>

namespace weft::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPackageHint =
    "; the Debian package dataset-fashion-mnist provides these files (apt-get install dataset-fashion-mnist), "
    "or pass the directory that holds them to load_fashion_mnist";

/// `dir/name.gz`, else `dir/name`; a DataError naming the file when neither exists.
fs::path find_file(const fs::path& dir, const std::string& name) {
  const fs::path gz = dir / (name + ".gz");
  const fs::path raw = dir / name;
  if (fs::exists(gz)) return gz;
  if (fs::exists(raw)) return raw;
  if (!fs::is_directory(dir))
    throw DataError(fmt::format("weft::io::load_fashion_mnist: the directory {} does not exist, so {} is missing{}",
                                dir.string(), gz.string(), kPackageHint));
  throw DataError(fmt::format("weft::io::load_fashion_mnist: {} is missing (and so is {}){}",
                              gz.string(), raw.string(), kPackageHint));
}

/// A label outside [0, 10) would index past the class names and the one-hot encoding.
void check_labels(const Tensor& labels, const fs::path& path) {
  const auto values = labels.values<std::int32_t>();
  const auto bad = std::find_if(values.begin(), values.end(), [](std::int32_t l) {
    return l < 0 || l >= static_cast<std::int32_t>(kFashionMnistClasses.size());
  });
  if (bad != values.end())
    throw DataError(fmt::format("weft::io::load_fashion_mnist: {} has label {} at position {}; Fashion-MNIST labels "
                                "are 0 to 9, so this is not a Fashion-MNIST labels file",
                                path.string(), *bad, bad - values.begin()));
}

LabeledImages load_split(const fs::path& images, const fs::path& labels) {
  LabeledImages split = read_idx_pair(images, labels);
  check_labels(split.labels, labels);
  return split;
}

}  // namespace

FashionMnist load_fashion_mnist(const fs::path& dir) {
  // All four files are looked up before any is read, so a missing one is reported at once.
  const fs::path train_images = find_file(dir, "train-images-idx3-ubyte");
  const fs::path train_labels = find_file(dir, "train-labels-idx1-ubyte");
  const fs::path test_images = find_file(dir, "t10k-images-idx3-ubyte");
  const fs::path test_labels = find_file(dir, "t10k-labels-idx1-ubyte");
  // The test split decompresses on a second thread while this one reads the training split.
  auto test_split = std::async(std::launch::async, load_split, test_images, test_labels);
  auto train = load_split(train_images, train_labels);
  auto test = test_split.get();
  return {std::move(train.images), std::move(train.labels), std::move(test.images), std::move(test.labels)};
}

}  // namespace weft::io
