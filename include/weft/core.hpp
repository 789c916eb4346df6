#pragma once
// The functional core: Scope, init/apply, initializers and the pure layer functions.
#include "weft/core/activation.hpp"
#include "weft/core/attention.hpp"
#include "weft/core/conv.hpp"
#include "weft/core/initializer.hpp"
#include "weft/core/initializers.hpp"
#include "weft/core/linear.hpp"
#include "weft/core/normalization.hpp"
#include "weft/core/recurrent.hpp"
#include "weft/core/scope.hpp"
#include "weft/core/stochastic.hpp"
