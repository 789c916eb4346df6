#pragma once
// The object layer: modules as aggregates, merge_param, templates, init/apply, tabulate.
#include "weft/nn/attention.hpp"
#include "weft/nn/conv.hpp"
#include "weft/nn/core_options.hpp"
#include "weft/nn/linear.hpp"
#include "weft/nn/merge_param.hpp"
#include "weft/nn/module.hpp"
#include "weft/nn/normalization.hpp"
#include "weft/nn/partial.hpp"
#include "weft/nn/recurrent.hpp"
#include "weft/nn/sequential.hpp"
#include "weft/nn/stochastic.hpp"
#include "weft/nn/tabulate.hpp"
