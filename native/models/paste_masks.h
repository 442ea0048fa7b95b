// torchvision.models.detection.roi_heads.paste_masks_in_image: each M x M mask probability map,
// padded by one cell and its box grown by (M + 2) / M to match, resized bilinearly
// (align_corners=false) onto the box's integer pixels and pasted into a zero image.
// paste_masks_mmdet: mmdetection 2.x's FCNMaskHead.get_seg_masks (_do_paste_mask on CPU, one box at
// a time with skip_empty): the mask bilinearly sampled (grid_sample, zeros outside, align_corners
// false) at every pixel centre of the box's float extent, over the pixels from floor(x1) - 1 to
// ceil(x2) + 1 (clipped to the image), zero elsewhere.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mtpd {

// masks (D, 1, M, M), boxes (D, 4) xyxy in the image's pixels -> (D, 1, height, width).
at::Tensor paste_masks_in_image(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                                int64_t padding = 1);
at::Tensor paste_masks_mmdet(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width);

}  // namespace mtpd
