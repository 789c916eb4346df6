#pragma once
// The umbrella header: all of weft. Finer-grained headers (weft/nn.hpp, weft/core/linear.hpp, ...)
// compile faster where only part is needed.
#include "weft/autodiff.hpp"
#include "weft/core.hpp"
#include "weft/error.hpp"
#include "weft/io.hpp"
#include "weft/keywords.hpp"
#include "weft/losses.hpp"
#include "weft/nn.hpp"
#include "weft/ops.hpp"
#include "weft/optim.hpp"
#include "weft/partial.hpp"
#include "weft/random.hpp"
#include "weft/record.hpp"
#include "weft/shape.hpp"
#include "weft/tensor.hpp"
#include "weft/training.hpp"
#include "weft/variables.hpp"
