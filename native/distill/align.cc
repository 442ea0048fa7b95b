#include "distill/align.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace mtpd::distill {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

ImageSize valid_cells(ImageSize image_size, int64_t stride) {
  return {ceil_div(image_size[0], stride), ceil_div(image_size[1], stride)};
}

std::vector<ImageSize> valid_cells(const Grid& grid) {
  std::vector<ImageSize> out;
  out.reserve(grid.image_sizes.size());
  for (const auto& s : grid.image_sizes) out.push_back(valid_cells(s, grid.stride));
  return out;
}

void check_grid(const Grid& g, int64_t n, const std::string& what) {
  MTPD_CHECK_SHAPE(g.stride > 0, what, ": stride must be positive, got ", g.stride);
  MTPD_CHECK_SHAPE(static_cast<int64_t>(g.image_sizes.size()) == n, what, ": ", g.image_sizes.size(),
                   " image sizes for ", n, " images");
  for (size_t i = 0; i < g.image_sizes.size(); ++i) {
    const auto [h, w] = g.image_sizes[i];
    MTPD_CHECK_SHAPE(h > 0 && w > 0, what, ": image size [", i, "] must be positive, got (", h, ", ", w, ")");
    const ImageSize c = valid_cells(g.image_sizes[i], g.stride);
    MTPD_CHECK_SHAPE(c[0] <= g.height && c[1] <= g.width, what, ": image ", i, " of size (", h, ", ", w,
                     ") covers ", c[0], "x", c[1], " cells at stride ", g.stride, ", more than the ", g.height, "x",
                     g.width, " map (wrong image sizes or stride?)");
  }
}

Grid MapLayout::grid(const std::string& tap, const at::Tensor& map, const std::string& what) const {
  auto it = strides.find(tap);
  MTPD_CHECK_ARG(it != strides.end(), what, ": no stride for tap \"", tap, "\"");
  MTPD_CHECK_SHAPE(map.dim() == 4, what, ": map \"", tap, "\" must be (N, C, H, W), got ", map.sizes());
  Grid g;
  g.image_sizes = image_sizes;
  g.stride = it->second;
  g.height = map.size(2);
  g.width = map.size(3);
  check_grid(g, map.size(0), fmt(what, " (tap \"", tap, "\")"));
  return g;
}

at::Tensor valid_mask(const Grid& grid, const at::TensorOptions& options) {
  const int64_t n = static_cast<int64_t>(grid.image_sizes.size());
  at::Tensor m = at::zeros({n, 1, grid.height, grid.width}, options);
  const auto cells = valid_cells(grid);
  for (int64_t i = 0; i < n; ++i) m[i].slice(1, 0, cells[i][0]).slice(2, 0, cells[i][1]).fill_(1);
  return m;
}

bool whole_map_alignment(const Grid& s, const Grid& t) {
  if (s.image_sizes.size() != t.image_sizes.size()) return false;
  for (size_t i = 0; i < s.image_sizes.size(); ++i) {
    const ImageSize cs = valid_cells(s.image_sizes[i], s.stride), ct = valid_cells(t.image_sizes[i], t.stride);
    if (cs[0] != s.height || cs[1] != s.width || ct[0] != t.height || ct[1] != t.width) return false;
    // k_y = (h_t s_s) / (s_t h_s) must equal H_t / H_s (integers, no rounding).
    if (t.image_sizes[i][0] * s.stride * s.height != t.height * t.stride * s.image_sizes[i][0]) return false;
    if (t.image_sizes[i][1] * s.stride * s.width != t.width * t.stride * s.image_sizes[i][1]) return false;
  }
  return true;
}

Aligned align_map(const at::Tensor& x, const Grid& source, const Grid& target, const std::string& mode) {
  MTPD_CHECK_ARG(mode == "bilinear" || mode == "nearest", "align: mode must be \"bilinear\" or \"nearest\", got \"",
                 mode, "\"");
  MTPD_CHECK_SHAPE(x.dim() == 4 && x.numel() > 0, "align: source map must be a non-empty (N, C, H, W), got ",
                   x.sizes());
  MTPD_CHECK_SHAPE(x.size(2) == source.height && x.size(3) == source.width, "align: source map ", x.sizes(),
                   " does not match its grid ", source.height, "x", source.width);
  const int64_t n = x.size(0);
  check_grid(source, n, "align: source");
  check_grid(target, n, "align: target");
  MTPD_CHECK_SHAPE(target.height > 0 && target.width > 0, "align: target map must be non-empty, got ", target.height,
                   "x", target.width);
  Aligned out;
  out.cells = valid_cells(target);
  if (whole_map_alignment(source, target)) {
    out.whole = true;
    if (x.size(2) == target.height && x.size(3) == target.width) {
      out.map = x;
    } else {
      out.resampled = true;
      out.map = mode == "nearest" ? at::upsample_nearest2d(x, {target.height, target.width})
                                  : at::upsample_bilinear2d(x, {target.height, target.width}, /*align_corners=*/false);
    }
    return out;
  }
  const auto src_cells = valid_cells(source);
  std::vector<at::Tensor> per;
  per.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto [hs, ws] = src_cells[i];
    const auto [ht, wt] = out.cells[i];
    const at::Tensor crop = x.slice(0, i, i + 1).slice(2, 0, hs).slice(3, 0, ws);  // (1, C, hs, ws)
    // k = (h_t / s_t) / (h_s / s_s), from integers: one rounding.
    const int64_t num_y = target.image_sizes[i][0] * source.stride, den_y = target.stride * source.image_sizes[i][0];
    const int64_t num_x = target.image_sizes[i][1] * source.stride, den_x = target.stride * source.image_sizes[i][1];
    at::Tensor y;
    if (hs == ht && ws == wt && num_y == den_y && num_x == den_x) {
      y = crop;  // same cells, scale 1: a plain copy
    } else {
      out.resampled = true;
      const double ky = static_cast<double>(num_y) / static_cast<double>(den_y);
      const double kx = static_cast<double>(num_x) / static_cast<double>(den_x);
      y = mode == "nearest" ? at::_upsample_nearest_exact2d(crop, {ht, wt}, ky, kx)
                            : at::upsample_bilinear2d(crop, {ht, wt}, /*align_corners=*/false, ky, kx);
    }
    // (1, C, ht, wt) -> (1, C, H_t, W_t), zero on the padding.
    per.push_back(at::constant_pad_nd(y, {0, target.width - wt, 0, target.height - ht}, 0));
  }
  out.map = at::cat(per, 0);
  return out;
}

at::Tensor align_boxes(const at::Tensor& boxes, ImageSize from, ImageSize to) {
  MTPD_CHECK_SHAPE(boxes.dim() == 2 && boxes.size(1) == 4, "align: boxes must be (K, 4), got ", boxes.sizes());
  MTPD_CHECK_SHAPE(from[0] > 0 && from[1] > 0 && to[0] > 0 && to[1] > 0, "align: image sizes must be positive");
  if (from == to) return boxes;
  const double ry = static_cast<double>(to[0]) / static_cast<double>(from[0]);
  const double rx = static_cast<double>(to[1]) / static_cast<double>(from[1]);
  const at::Tensor r = at::tensor({rx, ry, rx, ry}, at::kDouble).to(boxes.device(), boxes.scalar_type());
  return boxes * r;  // (K, 4) * (4)
}

}  // namespace mtpd::distill
