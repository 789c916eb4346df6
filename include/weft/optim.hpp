#pragma once
// weft::optim: pure optimizers in the shape of Optax (GradientTransformation, chain, apply_updates),
// learning-rate schedules, and gradient clipping.
#include "weft/optim/adam.hpp"
#include "weft/optim/clip.hpp"
#include "weft/optim/schedule.hpp"
#include "weft/optim/sgd.hpp"
#include "weft/optim/transform.hpp"
