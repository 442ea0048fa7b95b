#include "models/paste_masks.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/errors.h"

namespace mtpd {

at::Tensor paste_masks_in_image(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                                int64_t padding) {
  MTPD_CHECK_SHAPE(masks.dim() == 4 && masks.size(1) == 1 && masks.size(2) == masks.size(3),
                   "paste_masks_in_image: expected masks of shape (D, 1, M, M), got ", masks.sizes());
  MTPD_CHECK_SHAPE(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == masks.size(0),
                   "paste_masks_in_image: expected boxes of shape (", masks.size(0), ", 4), got ", boxes.sizes());
  const int64_t d = masks.size(0), m = masks.size(3);
  at::Tensor out = at::zeros({d, 1, height, width}, masks.options());
  if (d == 0) return out;
  // expand_masks, expand_boxes
  at::Tensor padded = at::constant_pad_nd(masks, {padding, padding, padding, padding}, 0);
  const double scale = static_cast<double>(m + 2 * padding) / static_cast<double>(m);
  at::Tensor b = boxes.to(masks.scalar_type());
  at::Tensor w_half = (b.select(1, 2) - b.select(1, 0)) * 0.5;
  at::Tensor h_half = (b.select(1, 3) - b.select(1, 1)) * 0.5;
  at::Tensor x_c = (b.select(1, 2) + b.select(1, 0)) * 0.5;
  at::Tensor y_c = (b.select(1, 3) + b.select(1, 1)) * 0.5;
  w_half = w_half * scale;
  h_half = h_half * scale;
  at::Tensor e = at::stack({x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half}, 1).to(at::kLong).cpu();
  auto acc = e.accessor<int64_t, 2>();
  for (int64_t i = 0; i < d; ++i) {
    const int64_t x0b = acc[i][0], y0b = acc[i][1], x1b = acc[i][2], y1b = acc[i][3];
    const int64_t w = std::max<int64_t>(x1b - x0b + 1, 1), h = std::max<int64_t>(y1b - y0b + 1, 1);
    at::Tensor r = at::upsample_bilinear2d(padded.slice(0, i, i + 1), {h, w}, /*align_corners=*/false)[0][0];
    const int64_t x_0 = std::max<int64_t>(x0b, 0), x_1 = std::min<int64_t>(x1b + 1, width);
    const int64_t y_0 = std::max<int64_t>(y0b, 0), y_1 = std::min<int64_t>(y1b + 1, height);
    if (x_1 <= x_0 || y_1 <= y_0) continue;
    out[i][0].slice(0, y_0, y_1).slice(1, x_0, x_1).copy_(
        r.slice(0, y_0 - y0b, y_1 - y0b).slice(1, x_0 - x0b, x_1 - x0b));
  }
  return out;
}

}  // namespace mtpd
