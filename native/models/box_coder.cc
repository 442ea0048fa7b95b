#include "models/box_coder.h"

#include <ATen/ATen.h>

namespace mtpd {

BoxCoder::BoxCoder(std::array<double, 4> weights, double clip, bool mmdet)
    : weights_(weights), clip_(clip), mmdet_(mmdet) {}

at::Tensor BoxCoder::encode_single(const at::Tensor& reference_boxes, const at::Tensor& proposals) const {
  // As torchvision's encode_boxes; weights as a tensor of the boxes' dtype.
  at::Tensor w = at::tensor({weights_[0], weights_[1], weights_[2], weights_[3]}, at::kDouble)
                     .to(reference_boxes.device(), reference_boxes.scalar_type());
  auto col = [](const at::Tensor& b, int64_t i) { return b.select(1, i).unsqueeze(1); };
  at::Tensor ex_w = col(proposals, 2) - col(proposals, 0);
  at::Tensor ex_h = col(proposals, 3) - col(proposals, 1);
  at::Tensor ex_cx = col(proposals, 0) + 0.5 * ex_w;
  at::Tensor ex_cy = col(proposals, 1) + 0.5 * ex_h;
  at::Tensor gt_w = col(reference_boxes, 2) - col(reference_boxes, 0);
  at::Tensor gt_h = col(reference_boxes, 3) - col(reference_boxes, 1);
  at::Tensor gt_cx = col(reference_boxes, 0) + 0.5 * gt_w;
  at::Tensor gt_cy = col(reference_boxes, 1) + 0.5 * gt_h;
  at::Tensor dx = w[0] * (gt_cx - ex_cx) / ex_w;
  at::Tensor dy = w[1] * (gt_cy - ex_cy) / ex_h;
  at::Tensor dw = w[2] * at::log(gt_w / ex_w);
  at::Tensor dh = w[3] * at::log(gt_h / ex_h);
  return at::cat({dx, dy, dw, dh}, 1);
}

at::Tensor BoxCoder::decode_single(const at::Tensor& rel_codes, const at::Tensor& boxes_in) const {
  at::Tensor boxes = boxes_in.to(rel_codes.scalar_type());
  if (mmdet_) {
    // delta2bbox: denorm = deltas * stds + means; pxy = (x1y1 + x2y2) * 0.5, pwh = x2y2 - x1y1;
    // gxy = pxy + pwh * dxy, gwh = pwh * exp(clamp(dwh, -max_ratio, max_ratio)),
    // max_ratio = |log(16 / 1000)|; boxes gxy -/+ gwh * 0.5. Per class: (K, 4C) codes, (K, 4) boxes.
    at::Tensor px = ((boxes.select(1, 0) + boxes.select(1, 2)) * 0.5).unsqueeze(1);
    at::Tensor py = ((boxes.select(1, 1) + boxes.select(1, 3)) * 0.5).unsqueeze(1);
    at::Tensor pw = (boxes.select(1, 2) - boxes.select(1, 0)).unsqueeze(1);
    at::Tensor ph = (boxes.select(1, 3) - boxes.select(1, 1)).unsqueeze(1);
    // stds = 1 / weights (torchvision's weights are mmdet's inverse stds), means 0
    at::Tensor dx = rel_codes.slice(1, 0, c10::nullopt, 4) * (1.0 / weights_[0]);
    at::Tensor dy = rel_codes.slice(1, 1, c10::nullopt, 4) * (1.0 / weights_[1]);
    at::Tensor dw = (rel_codes.slice(1, 2, c10::nullopt, 4) * (1.0 / weights_[2])).clamp(-clip_, clip_);
    at::Tensor dh = (rel_codes.slice(1, 3, c10::nullopt, 4) * (1.0 / weights_[3])).clamp(-clip_, clip_);
    at::Tensor gx = px + pw * dx, gy = py + ph * dy;
    at::Tensor gw = pw * at::exp(dw), gh = ph * at::exp(dh);
    return at::stack({gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5}, 2).flatten(1);
  }
  at::Tensor widths = boxes.select(1, 2) - boxes.select(1, 0);
  at::Tensor heights = boxes.select(1, 3) - boxes.select(1, 1);
  at::Tensor ctr_x = boxes.select(1, 0) + 0.5 * widths;
  at::Tensor ctr_y = boxes.select(1, 1) + 0.5 * heights;
  // rel_codes[:, k::4] / w_k : (K, 1) each
  at::Tensor dx = rel_codes.slice(1, 0, c10::nullopt, 4) / weights_[0];
  at::Tensor dy = rel_codes.slice(1, 1, c10::nullopt, 4) / weights_[1];
  at::Tensor dw = (rel_codes.slice(1, 2, c10::nullopt, 4) / weights_[2]).clamp_max(clip_);
  at::Tensor dh = (rel_codes.slice(1, 3, c10::nullopt, 4) / weights_[3]).clamp_max(clip_);
  at::Tensor pcx = dx * widths.unsqueeze(1) + ctr_x.unsqueeze(1);
  at::Tensor pcy = dy * heights.unsqueeze(1) + ctr_y.unsqueeze(1);
  at::Tensor pw = at::exp(dw) * widths.unsqueeze(1);
  at::Tensor ph = at::exp(dh) * heights.unsqueeze(1);
  at::Tensor hw = 0.5 * pw, hh = 0.5 * ph;
  return at::stack({pcx - hw, pcy - hh, pcx + hw, pcy + hh}, 2).flatten(1);
}

}  // namespace mtpd
