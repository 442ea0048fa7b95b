// Box ops of torchvision.ops that detectors need, written as tensor ops so they run on CPU and
// CUDA (libtorch has no torchvision kernels): box_iou, clip_boxes_to_image, nms, batched_nms.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mtpd::ops {

// (N, 4) x (M, 4) xyxy -> (N, M) IoU, as torchvision.ops.box_iou.
at::Tensor box_iou(const at::Tensor& boxes1, const at::Tensor& boxes2);

// Clamps x to [0, width] and y to [0, height].
at::Tensor clip_boxes_to_image(const at::Tensor& boxes, int64_t height, int64_t width);

// Greedy non-maximum suppression: indices (int64) of the kept boxes, by decreasing score
// (ties: lower index first). A box is dropped when its IoU with a kept, higher-scoring box is
// > iou_threshold. Same arithmetic as torchvision's CPU kernel (areas without +1).
at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);

// NMS independently per category `idxs`; boxes of different categories never suppress each
// other. Result sorted by decreasing score, as torchvision.ops.batched_nms.
at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold);

}  // namespace mtpd::ops
