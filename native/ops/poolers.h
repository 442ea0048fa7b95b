// torchvision.ops.MultiScaleRoIAlign: RoIAlign over FPN levels, each box pooled from the level its
// scale maps to (LevelMapper, eq. 1 of the FPN paper: k = floor(k0 + log2(sqrt(area) / 224)),
// clamped to the levels given). Each level's scale is either fixed (`scales`: 1/stride, as
// mmdetection's SingleRoIExtractor and detectron2's ROIPooler take featmap_strides) or, when none
// are given, inferred from its map and the largest image height of the batch on the first call
// and kept from then on, as torchvision's instance keeps self.scales (so a later batch of very
// flat images, whose padded height is far above its largest height, is pooled at the scales of
// the first batch, not at ones inferred from itself). The kept scales are state a checkpoint must
// carry (kept_scales / keep_scales): a resumed process's fresh instance would otherwise infer
// them from whichever batch it sees first. No parameters.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <vector>

namespace mtpd::ops {

struct MultiScaleRoIAlignOptions {
  int64_t output_size = 7;        // 7 (box head), 14 (mask head)
  int64_t sampling_ratio = 2;
  int64_t canonical_scale = 224;
  int64_t canonical_level = 4;
  bool aligned = false;           // torchvision: false; mmdetection: true
  std::vector<double> scales;     // fixed per-level scales (1/stride); empty: torchvision's inference
};

// (K) level index 0..L-1 of every box (boxes (K, 4) xyxy), as torchvision's LevelMapper.
at::Tensor map_levels(const at::Tensor& boxes, int64_t k_min, int64_t k_max, int64_t canonical_scale,
                      int64_t canonical_level);

// The scale of a map of height map_h for images whose largest resized height is max_h:
// 2^round(log2(map_h / max_h)) (torchvision's _infer_scale, from the heights).
double infer_scale(int64_t map_h, int64_t max_h);

class MultiScaleRoIAlign {
 public:
  explicit MultiScaleRoIAlign(MultiScaleRoIAlignOptions options = {}) : options_(options) {}
  // features: the pooled maps, finest first, (N, C, Hl, Wl); boxes: per image (Ki, 4) xyxy in
  // resized-image pixels; image_sizes: per image (h, w) after resize. Returns (sum Ki, C, S, S)
  // with the boxes of image 0 first.
  at::Tensor operator()(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes,
                        const std::vector<std::array<int64_t, 2>>& image_sizes) const;
  const MultiScaleRoIAlignOptions& options() const { return options_; }
  // Each map's scale: the fixed ones, or inferred from these maps and sizes on the first call
  // (torchvision's _setup_scales when self.scales is None) and the kept ones after that.
  const std::vector<double>& scales(const std::vector<at::Tensor>& features,
                                    const std::vector<std::array<int64_t, 2>>& image_sizes) const;
  // The scales in use: the fixed ones, the kept ones, or empty before an inferring pooler's first call.
  const std::vector<double>& kept_scales() const { return options_.scales.empty() ? scales_ : options_.scales; }
  // Restores kept scales (a checkpoint's; empty: infer again on the next call). ArgumentError
  // unless each is a power of two (what inference gives); a fixed pooler keeps its own scales
  // and accepts only those or none.
  void keep_scales(const std::vector<double>& scales);

 private:
  MultiScaleRoIAlignOptions options_;
  // torchvision's self.scales: empty until the first call (a module runs one call at a time)
  mutable std::vector<double> scales_;
};

}  // namespace mtpd::ops
