#include "models/paste_masks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

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

at::Tensor paste_masks_mmdet(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width) {
  MTPD_CHECK_SHAPE(masks.dim() == 4 && masks.size(1) == 1,
                   "paste_masks_mmdet: expected masks of shape (D, 1, M, M), got ", masks.sizes());
  MTPD_CHECK_SHAPE(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == masks.size(0),
                   "paste_masks_mmdet: expected boxes of shape (", masks.size(0), ", 4), got ", boxes.sizes());
  const int64_t d = masks.size(0);
  at::Tensor out = at::zeros({d, 1, height, width}, masks.options().dtype(at::kFloat));
  if (d == 0) return out;
  at::Tensor b = boxes.to(at::kFloat);
  at::Tensor bc = b.cpu();
  auto acc = bc.accessor<float, 2>();
  const auto fopt = b.options();
  for (int64_t i = 0; i < d; ++i) {
    const int64_t x0_int = std::max<int64_t>(static_cast<int64_t>(std::floor(acc[i][0])) - 1, 0);
    const int64_t y0_int = std::max<int64_t>(static_cast<int64_t>(std::floor(acc[i][1])) - 1, 0);
    const int64_t x1_int = std::min<int64_t>(static_cast<int64_t>(std::ceil(acc[i][2])) + 1, width);
    const int64_t y1_int = std::min<int64_t>(static_cast<int64_t>(std::ceil(acc[i][3])) + 1, height);
    if (x1_int <= x0_int || y1_int <= y0_int) continue;
    at::Tensor x0 = b[i][0], y0 = b[i][1], x1 = b[i][2], y1 = b[i][3];
    // pixel centres in the box's [-1, 1] frame (float32, mmdet's order of operations); a box of no
    // width or height gives inf, which mmdet sets to 0
    at::Tensor img_x = (at::arange(x0_int, x1_int, fopt) + 0.5 - x0) / (x1 - x0) * 2 - 1;
    at::Tensor img_y = (at::arange(y0_int, y1_int, fopt) + 0.5 - y0) / (y1 - y0) * 2 - 1;
    img_x = at::where(at::isinf(img_x), at::zeros_like(img_x), img_x);
    img_y = at::where(at::isinf(img_y), at::zeros_like(img_y), img_y);
    const int64_t h = img_y.size(0), w = img_x.size(0);
    at::Tensor grid = at::stack({img_x.view({1, w}).expand({h, w}), img_y.view({h, 1}).expand({h, w})}, 2).unsqueeze(0);
    at::Tensor r = at::grid_sampler(masks.slice(0, i, i + 1).to(at::kFloat), grid, /*bilinear*/ 0, /*zeros*/ 0,
                                    /*align_corners=*/false);  // (1, 1, h, w)
    out[i][0].slice(0, y0_int, y1_int).slice(1, x0_int, x1_int).copy_(r[0][0]);
  }
  return out;
}

}  // namespace mtpd
