#include "ops/poolers.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.h"
#include "ops/roi_align.h"

namespace mtpd::ops {

at::Tensor map_levels(const at::Tensor& boxes, int64_t k_min, int64_t k_max, int64_t canonical_scale,
                      int64_t canonical_level) {
  at::Tensor area = (boxes.select(1, 2) - boxes.select(1, 0)) * (boxes.select(1, 3) - boxes.select(1, 1));
  at::Tensor s = at::sqrt(area);
  // floor(lvl0 + log2(s / s0) + eps), in the boxes' precision
  at::Tensor lvl = at::floor(at::log2(s / static_cast<double>(canonical_scale)) + static_cast<double>(canonical_level) +
                             at::scalar_tensor(1e-6, s.options()));
  lvl = lvl.clamp(static_cast<double>(k_min), static_cast<double>(k_max));
  return lvl.to(at::kLong) - k_min;
}

double infer_scale(int64_t map_h, int64_t max_h) {
  // float(s1) / float(s2) -> float32 tensor -> log2 -> round (half to even) -> 2 ** x
  const float approx = static_cast<float>(static_cast<double>(map_h) / static_cast<double>(max_h));
  const float e = std::nearbyint(std::log2(approx));
  return std::pow(2.0, static_cast<double>(e));
}

const std::vector<double>& MultiScaleRoIAlign::scales(const std::vector<at::Tensor>& features,
                                                      const std::vector<std::array<int64_t, 2>>& image_sizes) const {
  if (!options_.scales.empty()) {
    MTPD_CHECK_SHAPE(options_.scales.size() == features.size(), "MultiScaleRoIAlign: ", options_.scales.size(),
                     " scales for ", features.size(), " feature maps");
    return options_.scales;
  }
  if (scales_.size() != features.size()) {
    MTPD_CHECK_ARG(!image_sizes.empty(), "MultiScaleRoIAlign: no image sizes");
    int64_t max_h = 0;
    for (const auto& s : image_sizes) max_h = std::max(max_h, s[0]);
    std::vector<double> scales;
    for (const auto& f : features) scales.push_back(infer_scale(f.size(2), max_h));
    scales_ = std::move(scales);
  }
  return scales_;
}

void MultiScaleRoIAlign::keep_scales(const std::vector<double>& scales) {
  for (size_t i = 0; i < scales.size(); ++i) {
    const double e = std::log2(scales[i]);
    MTPD_CHECK_ARG(std::isfinite(scales[i]) && scales[i] > 0 && std::isfinite(e) && e == std::round(e),
                   "MultiScaleRoIAlign: scales[", i, "] must be a power of two, got ", scales[i]);
  }
  if (!options_.scales.empty()) {
    MTPD_CHECK_ARG(scales.empty() || scales == options_.scales,
                   "MultiScaleRoIAlign: this pooler's scales are fixed (1/stride); cannot keep others");
    return;
  }
  scales_ = scales;
}

at::Tensor MultiScaleRoIAlign::operator()(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes,
                                          const std::vector<std::array<int64_t, 2>>& image_sizes) const {
  MTPD_CHECK_ARG(!features.empty(), "MultiScaleRoIAlign: no feature maps");
  MTPD_CHECK_SHAPE(boxes.size() == image_sizes.size(), "MultiScaleRoIAlign: ", boxes.size(), " box lists for ",
                   image_sizes.size(), " images");
  MTPD_CHECK_SHAPE(features[0].size(0) == static_cast<int64_t>(boxes.size()), "MultiScaleRoIAlign: ",
                   features[0].size(0), " images in the maps but ", boxes.size(), " box lists");
  // (K, 5) rois: (image index, x1, y1, x2, y2)
  std::vector<at::Tensor> rows;
  for (size_t i = 0; i < boxes.size(); ++i) {
    MTPD_CHECK_SHAPE(boxes[i].dim() == 2 && boxes[i].size(1) == 4, "MultiScaleRoIAlign: boxes[", i,
                     "] must be (K, 4), got ", boxes[i].sizes());
    at::Tensor b = boxes[i].to(features[0].device());
    rows.push_back(at::cat({at::full({b.size(0), 1}, static_cast<double>(i), b.options()), b}, 1));
  }
  at::Tensor rois = at::cat(rows, 0);
  const std::vector<double> scales = this->scales(features, image_sizes);
  const int64_t s = options_.output_size;
  if (features.size() == 1) {
    return roi_align(features[0], rois, s, s, scales[0], options_.sampling_ratio, options_.aligned);
  }
  // int(-log2(scale)) of the finest and coarsest maps (torchvision's lvl_min, lvl_max)
  const auto k_min = static_cast<int64_t>(-std::log2(static_cast<float>(scales.front())));
  const auto k_max = static_cast<int64_t>(-std::log2(static_cast<float>(scales.back())));
  at::Tensor levels;
  {
    at::NoGradGuard no_grad;
    levels = map_levels(rois.slice(1, 1, 5), k_min, k_max, options_.canonical_scale, options_.canonical_level);
  }
  std::vector<at::Tensor> outs, where;
  for (size_t l = 0; l < features.size(); ++l) {
    at::Tensor idx = (levels == static_cast<int64_t>(l)).nonzero().select(1, 0);
    if (idx.numel() == 0) continue;
    outs.push_back(roi_align(features[l], rois.index_select(0, idx), s, s, scales[l], options_.sampling_ratio,
                             options_.aligned));
    where.push_back(idx);
  }
  if (outs.empty()) return at::zeros({0, features[0].size(1), s, s}, features[0].options());
  // back into box order
  at::Tensor order = at::argsort(at::cat(where, 0));
  return at::cat(outs, 0).index_select(0, order);
}

}  // namespace mtpd::ops
