// The alignment: the one mapping between two models' feature maps of the same images, used by
// the adapters (student -> teacher), by the ensemble of teacher maps (teacher k -> teacher 0)
// and by the adaptation-cost fit (A -> B).
//
// Each detector resizes image i to its own (h_i, w_i) and zero-pads the batch bottom/right to a
// multiple of 32, so at a level of stride s image i occupies the top-left
//   ceil(h_i / s) x ceil(w_i / s)
// cells of the (H, W) map; the other cells are padding. Cell j covers input pixels
// [j s, (j + 1) s), its centre lies at (j + 1/2) s / h_i of the image height. The content mapping
// from source cells to target cells is therefore, per image, the scale
//   k_y = (h_t / s_t) / (h_s / s_s),   k_x = (w_t / s_t) / (w_s / s_s),
// target cell centre (i + 1/2) <-> source coordinate (i + 1/2) / k_y: exactly bilinear
// resampling with align_corners=false at scale factor k_y (at::upsample_bilinear2d's scales_h),
// source index (i + 1/2) / k_y - 1/2, clamped to the source image's valid cells (never read from
// its padding). The result fills the target image's valid cells and is zero on the padding.
//
// Batched fast path: when every image fills both maps exactly (ceil(h/s) = H, ceil(w/s) = W on
// both sides) and each per-image scale equals the whole-map ratio (H_t / H_s, W_t / W_s), the
// alignment is the whole-map resize at::upsample_bilinear2d(x, {H_t, W_t}) itself (bit-identical
// to the adapter of the original code); `whole` is then true and the losses see no validity
// information.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mtpd::distill {

using ImageSize = std::array<int64_t, 2>;  // (h, w) of an image; (rows, cols) of cells (as loss.h)

// Where a batch's images lie in one model's map at one level.
struct Grid {
  std::vector<ImageSize> image_sizes;  // per image (h, w) after the model's resize, before padding
  int64_t stride = 0;                 // the level's stride in input pixels (8 for p3, 128 for p7)
  int64_t height = 0, width = 0;      // the map's (H, W), padding included
};

// Where a batch's images lie in all of one model's maps: image sizes and each tap's stride.
struct MapLayout {
  std::vector<ImageSize> image_sizes;        // per image (h, w) after the model's resize
  std::map<std::string, int64_t> strides;   // tap -> stride ("p3" -> 8)
  // The grid of `tap` for a map (N, C, H, W); ArgumentError naming `what` when the tap has no
  // stride, ShapeError when the map does not fit the sizes (N or the valid cells).
  Grid grid(const std::string& tap, const at::Tensor& map, const std::string& what) const;
};

// ceil(h / s) x ceil(w / s): the cells image (h, w) occupies at stride s.
ImageSize valid_cells(ImageSize image_size, int64_t stride);

// Per image, its valid cells on the grid.
std::vector<ImageSize> valid_cells(const Grid& grid);

// (N, 1, H, W): 1 on each image's valid cells, 0 on padding.
at::Tensor valid_mask(const Grid& grid, const at::TensorOptions& options);

// True when the whole-map resize is the alignment (the batched fast path above).
bool whole_map_alignment(const Grid& source, const Grid& target);

// Throws ShapeError (naming `what`) unless the grid is consistent: positive sizes and stride, one
// size per image, every image's valid cells inside the map.
void check_grid(const Grid& grid, int64_t n, const std::string& what);

struct Aligned {
  at::Tensor map;               // (N, C, H_t, W_t): source content on the target grid, 0 on padding
                                // (whole path: the resized map itself)
  std::vector<ImageSize> cells;  // per image valid cells of the target grid
  bool whole = false;           // the batched fast path was taken (every cell is valid)
  bool resampled = false;       // some image was resampled (not a plain copy of its cells)
};

// Source map x (N, C, H_s, W_s) on grid `source` -> the target grid. mode: "bilinear" (the
// mapping above) or "nearest" (nearest source cell centre; the whole path uses
// at::upsample_nearest2d as the original adapter did). Differentiable in x.
Aligned align_map(const at::Tensor& x, const Grid& source, const Grid& target, const std::string& mode = "bilinear");

// Boxes (K, 4) xyxy in the pixels of an image resized to `from` -> the pixels of the same image
// resized to `to` (x by w_to / w_from, y by h_to / h_from: the mapping above in pixels).
at::Tensor align_boxes(const at::Tensor& boxes, ImageSize from, ImageSize to);

}  // namespace mtpd::distill
