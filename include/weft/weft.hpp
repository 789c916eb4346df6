#pragma once
// The umbrella header: all of weft.
#include "weft/autodiff.hpp"
#include "weft/error.hpp"
#include "weft/ops.hpp"
#include "weft/random.hpp"
#include "weft/shape.hpp"
#include "weft/tensor.hpp"
