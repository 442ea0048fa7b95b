// torchvision.ops.roi_align as tensor ops (CPU and CUDA, autograd through the features): every
// output bin averages sampling_ratio x sampling_ratio bilinear samples of its input window.
// Forward and backward give torchvision's numbers (same sample points, weights and border rules;
// only the summation order differs). There is no gradient for the boxes, as in torchvision.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mtpd::ops {

// input: (N, C, H, W) floating; rois: (K, 5) rows (batch index, x1, y1, x2, y2) in input pixels
// (scaled by spatial_scale onto the map). Returns (K, C, pooled_h, pooled_w) in input's dtype.
// aligned = true shifts the boxes by -0.5 pixel (pixel-centre model, Detectron2/mmcv); false is
// torchvision's legacy default (boxes smaller than 1 cell are grown to 1 cell).
// sampling_ratio <= 0 is torchvision's adaptive grid: ceil(roi size / output size) samples per
// bin, per box (what Mask R-CNN's mask targets use).
at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h, int64_t pooled_w,
                     double spatial_scale, int64_t sampling_ratio, bool aligned);

}  // namespace mtpd::ops
