#include "models/matcher.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace mtpd {

Matcher::Matcher(double high, double low, bool allow_low_quality)
    : high_(high), low_(low), allow_low_quality_(allow_low_quality) {
  MTPD_CHECK_ARG(low <= high, "Matcher: bg_iou_thresh (", low, ") must be <= fg_iou_thresh (", high, ")");
}

at::Tensor Matcher::operator()(const at::Tensor& q) const {
  MTPD_CHECK_SHAPE(q.numel() > 0, q.size(0) == 0 ? "no ground-truth boxes for one of the images"
                                                 : "no anchors for one of the images");
  auto mx = q.max(0);
  at::Tensor matched_vals = std::get<0>(mx), matches = std::get<1>(mx);
  at::Tensor all_matches = allow_low_quality_ ? matches.clone() : at::Tensor();
  at::Tensor below = matched_vals < low_;
  at::Tensor between = (matched_vals >= low_).logical_and(matched_vals < high_);
  matches.masked_fill_(below, BELOW_LOW_THRESHOLD);
  matches.masked_fill_(between, BETWEEN_THRESHOLDS);
  if (allow_low_quality_) {
    at::Tensor highest = std::get<0>(q.max(1));                   // (M)
    at::Tensor pairs = (q == highest.unsqueeze(1)).any(0);        // (N) anchors that are some gt's best
    matches = at::where(pairs, all_matches, matches);
  }
  return matches;
}

}  // namespace mtpd
