#pragma once
// Data-parallel training on MPI (built when MPI is found: link weft-dist).
#include "weft/dist/collectives.hpp"
#include "weft/dist/session.hpp"
