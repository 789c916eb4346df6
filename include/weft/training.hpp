#pragma once
// weft::training: what a training loop needs around the model and the optimizer, as
// flax.training and clu give it: the train state, metrics, a progress bar and metric writers.
#include "weft/training/accuracy.hpp"
#include "weft/training/average.hpp"
#include "weft/training/json_lines_writer.hpp"
#include "weft/training/progress_bar.hpp"
#include "weft/training/scalars.hpp"
#include "weft/training/tensorboard_writer.hpp"
#include "weft/training/train_state.hpp"
