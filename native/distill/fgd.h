// FGD's foreground/background masks (Yang et al., CVPR 2022; yzd-v/FGD fgd.py), exposed for tests.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

#include "distill/loss.h"

namespace mtpd::distill {

// Per image i, boxes are scaled to the (H, W) map by W / image_sizes[i].W and
// H / image_sizes[i].H; box k covers rows floor(y1)..ceil(y2) and columns floor(x1)..ceil(x2),
// both ends inclusive, clipped to the map; its value is 1 / (rows * cols) counted on the
// unclipped inclusive extents; overlapping boxes keep the maximum (the smaller box wins).
// Background = 1[fg == 0] / count, left at zero when nothing is background.
// Returns (fg, bg), each (N, H, W) float on `device`.
// The original code indexes the mask as [x-range, y-range] (transposed); we index [rows=y, cols=x].
std::pair<at::Tensor, at::Tensor> fgd_masks(const LossContext& ctx, int64_t n, int64_t h, int64_t w,
                                            const at::Device& device);

}  // namespace mtpd::distill
