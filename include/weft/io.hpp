#pragma once
// Data: IDX files, Fashion-MNIST, shuffled batches.
#include "weft/io/batches.hpp"
#include "weft/io/fashion_mnist.hpp"
#include "weft/io/idx.hpp"
