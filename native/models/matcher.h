// torchvision.models.detection._utils.Matcher: assigns each prediction (anchor) the gt with the
// highest IoU; below low_threshold -> -1 (background), between thresholds -> -2 (ignored);
// with allow_low_quality_matches, every gt's best anchors (ties included) keep their match.
#pragma once

#include <ATen/core/Tensor.h>

namespace mtpd {

class Matcher {
 public:
  static constexpr int64_t BELOW_LOW_THRESHOLD = -1;
  static constexpr int64_t BETWEEN_THRESHOLDS = -2;
  Matcher(double high_threshold, double low_threshold, bool allow_low_quality_matches);
  // match_quality_matrix: (M gt, N predictions) -> (N) int64.
  at::Tensor operator()(const at::Tensor& match_quality_matrix) const;

 private:
  double high_, low_;
  bool allow_low_quality_;
};

}  // namespace mtpd
