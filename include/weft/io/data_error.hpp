#pragma once
// weft::io::DataError: the error of every reader and writer of files in weft::io.
#include "weft/error.hpp"

namespace weft::io {

/// A data file that cannot be read or written as asked: missing, truncated, corrupt, not what was
/// expected, or a write the system refused. The message names the file, says what is wrong, and
/// how to fix it where possible.
class DataError : public Error {
 public:
  using Error::Error;
};

}  // namespace weft::io
