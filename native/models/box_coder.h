// torchvision.models.detection._utils.BoxCoder: (dx, dy, dw, dh) deltas of boxes relative to
// reference boxes (anchors), with weights and the exp clamp log(1000 / 16).
// mmdet = true decodes as mmdetection 2.x's DeltaXYWHBBoxCoder.decode (delta2bbox, means 0 and
// stds 1 as RetinaNet's): centres (x1 + x2) * 0.5, dw and dh clamped to [-log(1000/16),
// log(1000/16)] on both sides (torchvision clamps only from above).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cmath>

namespace mtpd {

class BoxCoder {
 public:
  explicit BoxCoder(std::array<double, 4> weights = {1.0, 1.0, 1.0, 1.0},
                    double bbox_xform_clip = std::log(1000.0 / 16), bool mmdet = false);
  // (K, 4) targets for `proposals` (anchors) to reach `reference_boxes` (matched gt).
  at::Tensor encode_single(const at::Tensor& reference_boxes, const at::Tensor& proposals) const;
  // (K, 4) boxes from (K, 4) deltas and (K, 4) reference boxes.
  at::Tensor decode_single(const at::Tensor& rel_codes, const at::Tensor& boxes) const;

 private:
  std::array<double, 4> weights_;
  double clip_;
  bool mmdet_;
};

}  // namespace mtpd
