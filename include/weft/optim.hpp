#pragma once
// weft::optim: pure optimizers in the shape of Optax (GradientTransformation, chain, apply_updates),
// learning-rate schedules, gradient clipping, masks and partitions of the params tree, gradient
// accumulation, moving averages and injected hyperparameters.
#include "weft/optim/accumulation.hpp"
#include "weft/optim/adafactor.hpp"
#include "weft/optim/adagrad.hpp"
#include "weft/optim/adam.hpp"
#include "weft/optim/clip.hpp"
#include "weft/optim/inject.hpp"
#include "weft/optim/lamb.hpp"
#include "weft/optim/lion.hpp"
#include "weft/optim/mask.hpp"
#include "weft/optim/rmsprop.hpp"
#include "weft/optim/schedule.hpp"
#include "weft/optim/sgd.hpp"
#include "weft/optim/transform.hpp"
#include "weft/optim/transforms.hpp"
