#pragma once
// Data: IDX files, Fashion-MNIST, shuffled batches, and their shards; checkpoints.
#include "weft/io/batches.hpp"
#include "weft/io/checkpoint_manager.hpp"
#include "weft/io/fashion_mnist.hpp"
#include "weft/io/flax_msgpack.hpp"
#include "weft/io/idx.hpp"
#include "weft/io/restore.hpp"
#include "weft/io/safetensors.hpp"
#include "weft/io/shard.hpp"
#include "weft/io/training_state.hpp"
