#pragma once
// weft's exception hierarchy. Every message says what was wrong, where, and how to fix it.
#include <stdexcept>
#include <string>

namespace weft {

/// Base of every error weft throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shapes that do not fit an op; the message names the op and the shapes.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A dtype an op does not accept (for example int32 where float32 is needed).
class DTypeError : public Error {
 public:
  using Error::Error;
};

/// A path or name that is not in a tree of variables.
class KeyError : public Error {
 public:
  using Error::Error;
};

/// A value outside what an op or layer accepts (rate outside [0, 1], an index out of range...).
class ValueError : public Error {
 public:
  using Error::Error;
};

}  // namespace weft
