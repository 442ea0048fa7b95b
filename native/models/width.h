// The width multiplier of the backbones and heads (a ResNet-18 x0.25 has a quarter of the
// channels): channels * multiplier, rounded to the nearest integer, at least one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mtpd {

inline int64_t scaled_width(int64_t channels, double multiplier) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::lround(static_cast<double>(channels) * multiplier)));
}

}  // namespace mtpd
