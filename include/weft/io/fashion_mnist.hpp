#pragma once
// Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 28x28 greyscale images of clothing in 10
// classes, 60000 for training and 10000 for testing, as shipped by the Debian package
// dataset-fashion-mnist.
#include <array>
#include <filesystem>
#include <string_view>

#include "weft/io/idx.hpp"
#include "weft/tensor.hpp"

namespace weft::io {

/// Where the Debian package dataset-fashion-mnist installs the files.
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// The class names, indexed by label.
inline constexpr std::array<std::string_view, 10> kFashionMnistClasses = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

struct FashionMnist {
  Tensor train_images;  // float32 [60000, 28, 28, 1], values in [0, 1]
  Tensor train_labels;  // int32 [60000], values in [0, 10)
  Tensor test_images;   // float32 [10000, 28, 28, 1]
  Tensor test_labels;   // int32 [10000]
};

/// Reads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
/// t10k-labels-idx1-ubyte from `dir`, each gzip-compressed (name.gz) or not (name). Throws
/// DataError naming the missing file (and the package that provides it), a corrupt file, images
/// and labels counts that disagree, or a label outside [0, 10).
[[nodiscard]] FashionMnist load_fashion_mnist(const std::filesystem::path& dir = kFashionMnistDir);

}  // namespace weft::io
