// Error types thrown by model, op and loss code. The binding maps them to JS:
//   ArgumentError -> TypeError, ShapeError -> RangeError, c10::Error -> Error (libtorch's
//   message without the C++ backtrace), anything else -> Error.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace mtpd {

// Wrong kind of argument (unknown option, wrong dtype, unknown name).
class ArgumentError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Right kind, wrong size or value (bad shape, index out of range, negative size).
class ShapeError : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <typename... Args>
std::string fmt(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

}  // namespace mtpd

#define MTPD_CHECK_ARG(cond, ...) \
  do {                            \
    if (!(cond)) throw ::mtpd::ArgumentError(::mtpd::fmt(__VA_ARGS__)); \
  } while (0)

#define MTPD_CHECK_SHAPE(cond, ...) \
  do {                              \
    if (!(cond)) throw ::mtpd::ShapeError(::mtpd::fmt(__VA_ARGS__)); \
  } while (0)
