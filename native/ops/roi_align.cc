#include "ops/roi_align.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/errors.h"

namespace mtpd::ops {

namespace {

// Per axis, the bilinear corners of every sample (torchvision's bilinear_interpolate, one axis
// at a time: the 2-D weights are products of the per-axis ones, and a sample is dropped when
// either coordinate falls outside [-1, size]). grid: (K) samples per bin of every box; samples
// i >= grid[k] (boxes with a smaller adaptive grid than the largest) get weight 0.
struct AxisSamples {
  at::Tensor index;   // (K, P, G, 2) int64: low, high cell
  at::Tensor weight;  // (K, P, G, 2): (1 - l, l), 0 for dropped samples
};

AxisSamples axis_samples(const at::Tensor& start, const at::Tensor& bin, int64_t pooled, const at::Tensor& grid,
                         int64_t grid_max, int64_t size) {
  const auto opts = start.options();
  // y = start + p * bin + (i + 0.5) * bin / G, in the input's precision and torchvision's order.
  at::Tensor p = at::arange(pooled, opts);
  at::Tensor i = at::arange(grid_max, opts).add_(0.5);
  at::Tensor gk = grid.clamp_min(1).to(start.scalar_type());
  at::Tensor a = start.unsqueeze(1) + p.unsqueeze(0) * bin.unsqueeze(1);  // (K, P)
  at::Tensor b = (i.unsqueeze(0) * bin.unsqueeze(1)) / gk.unsqueeze(1);  // (K, G)
  at::Tensor y = a.unsqueeze(2) + b.unsqueeze(1);  // (K, P, G)
  at::Tensor in_grid = at::arange(grid_max, grid.options()).unsqueeze(0) < grid.unsqueeze(1);  // (K, G)
  at::Tensor valid = (y >= -1.0).logical_and(y <= static_cast<double>(size)).logical_and(in_grid.unsqueeze(1));
  y = y.clamp_min(0);
  at::Tensor low = y.to(at::kLong);  // trunc == floor for y >= 0
  at::Tensor at_end = low >= size - 1;
  low = low.clamp_max(size - 1);
  at::Tensor high = at::where(at_end, low, low + 1);
  y = at::where(at_end, low.to(y.scalar_type()), y);
  at::Tensor l = y - low.to(y.scalar_type());
  at::Tensor h = 1 - l;
  at::Tensor zero = at::zeros({}, y.options());
  return {at::stack({low, high}, 3), at::stack({at::where(valid, h, zero), at::where(valid, l, zero)}, 3)};
}

}  // namespace

at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h, int64_t pooled_w,
                     double spatial_scale, int64_t sampling_ratio, bool aligned) {
  MTPD_CHECK_SHAPE(input.dim() == 4, "roi_align: expected input of shape (N, C, H, W), got ", input.sizes());
  MTPD_CHECK_ARG(at::isFloatingType(input.scalar_type()), "roi_align: expected floating point input, got ",
                 input.scalar_type());
  MTPD_CHECK_SHAPE(rois.dim() == 2 && rois.size(1) == 5,
                   "roi_align: expected rois of shape (K, 5) (batch index, x1, y1, x2, y2), got ", rois.sizes());
  MTPD_CHECK_ARG(pooled_h > 0 && pooled_w > 0, "roi_align: output_size must be positive, got (", pooled_h, ", ",
                 pooled_w, ")");
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t k = rois.size(0);
  // Half precision computes in float32, as torchvision's autocast rule for roi_align.
  const at::ScalarType compute = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor x = input.to(compute);

  at::Tensor index, weight;  // (K, PH, PW, 4 Gh Gw) flat cell of (N*H*W) and its weight / count
  int64_t gh = 1, gw = 1;
  {
    at::NoGradGuard no_grad;
    at::Tensor r = rois.detach().to(x.device(), compute);
    if (k > 0) {
      at::Tensor bi = r.select(1, 0).to(at::kLong);
      MTPD_CHECK_SHAPE(bi.min().item<int64_t>() >= 0 && bi.max().item<int64_t>() < n,
                       "roi_align: rois[:, 0] must be batch indices in 0..", n - 1);
    }
    const double offset = aligned ? 0.5 : 0.0;
    at::Tensor x1 = r.select(1, 1) * spatial_scale - offset, y1 = r.select(1, 2) * spatial_scale - offset;
    at::Tensor x2 = r.select(1, 3) * spatial_scale - offset, y2 = r.select(1, 4) * spatial_scale - offset;
    at::Tensor rw = x2 - x1, rh = y2 - y1;
    if (!aligned) {
      rw = rw.clamp_min(1.0);
      rh = rh.clamp_min(1.0);
    }
    at::Tensor bin_h = rh / static_cast<double>(pooled_h), bin_w = rw / static_cast<double>(pooled_w);
    // samples per bin: sampling_ratio, or adaptive ceil(roi / pooled) per box (sampling_ratio <= 0)
    at::Tensor grid_h, grid_w;
    if (sampling_ratio > 0) {
      grid_h = at::full({k}, sampling_ratio, r.options().dtype(at::kLong));
      grid_w = grid_h;
    } else {
      grid_h = at::ceil(bin_h).to(at::kLong);
      grid_w = at::ceil(bin_w).to(at::kLong);
    }
    gh = k > 0 ? std::max<int64_t>(1, grid_h.max().item<int64_t>()) : 1;
    gw = k > 0 ? std::max<int64_t>(1, grid_w.max().item<int64_t>()) : 1;
    AxisSamples sy = axis_samples(y1, bin_h, pooled_h, grid_h, gh, h);
    AxisSamples sx = axis_samples(x1, bin_w, pooled_w, grid_w, gw, w);
    at::Tensor count = (grid_h * grid_w).clamp_min(1).to(compute).view({k, 1, 1, 1, 1, 1, 1});
    at::Tensor base = r.select(1, 0).to(at::kLong) * (h * w);  // (K)
    // (K, PH, 1, Gh, 2, 1, 1) rows x (K, 1, PW, 1, 1, Gw, 2) columns -> (K, PH, PW, Gh, 2, Gw, 2)
    at::Tensor iy = sy.index.view({k, pooled_h, 1, gh, 2, 1, 1});
    at::Tensor ix = sx.index.view({k, 1, pooled_w, 1, 1, gw, 2});
    index = (base.view({k, 1, 1, 1, 1, 1, 1}) + iy * w + ix).reshape({k, pooled_h, pooled_w, 4 * gh * gw});
    at::Tensor wy = sy.weight.view({k, pooled_h, 1, gh, 2, 1, 1});
    at::Tensor wx = sx.weight.view({k, 1, pooled_w, 1, 1, gw, 2});
    weight = ((wy * wx) / count).reshape({k, pooled_h, pooled_w, 4 * gh * gw});
  }

  // (N, C, H, W) -> (N*H*W, C): every sample is one row gather; index_select's backward
  // scatters the weighted gradients back onto the cells (torchvision's backward).
  at::Tensor cells = x.permute({0, 2, 3, 1}).reshape({n * h * w, c});
  // Chunks of boxes keep the gathered samples under ~16M values.
  const int64_t s4 = 4 * gh * gw;
  const int64_t per_box = pooled_h * pooled_w * s4 * std::max<int64_t>(c, 1);
  const int64_t chunk = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(per_box, 1));
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < k || (k == 0 && s == 0); s += chunk) {
    const int64_t e = std::min(k, s + chunk);
    const int64_t m = (e - s) * pooled_h * pooled_w;
    at::Tensor idx = index.slice(0, s, e).reshape({-1});
    at::Tensor vals = cells.index_select(0, idx).view({m, s4, c});                  // (M, 4 Gh Gw, C)
    at::Tensor wts = weight.slice(0, s, e).reshape({m, 1, s4}).to(vals.scalar_type());  // (M, 1, 4 Gh Gw)
    parts.push_back(at::bmm(wts, vals).view({e - s, pooled_h, pooled_w, c}));       // (k, PH, PW, C)
    if (k == 0) break;
  }
  at::Tensor out = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
  return out.permute({0, 3, 1, 2}).contiguous().to(input.scalar_type());  // (K, C, PH, PW)
}

}  // namespace mtpd::ops
