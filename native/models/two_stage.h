// The forward pass every two-stage detector shares (Mask R-CNN, Faster R-CNN and the cascades):
// the backbone's FPN maps (P2..P5, pool), RPN proposals over all of them, RoI heads on P2..P5.
// Targets carry labels 0..num_classes-1; the RPN and RoI heads see torchvision's (+1, 0 being the
// background), and the detections come back in the detector contract's labels with boxes in
// original-image pixels and, for mask models, masks pasted into the original image.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <string>
#include <vector>

#include "core/errors.h"
#include "models/backbone.h"
#include "models/detector.h"
#include "models/paste_masks.h"
#include "models/rpn.h"
#include "models/transform.h"

namespace mtpd {

// Strides of the levels the RoI heads pool (every FPN level but the last, the pool level): 4..32
// for P2..P5.
inline std::vector<int64_t> pooled_strides(const BackboneWithFPNImpl& backbone) {
  const auto& levels = backbone.levels();
  std::vector<int64_t> out;
  for (size_t i = 0; i + 1 < levels.size(); ++i) out.push_back(int64_t{1} << levels[i]);
  return out;
}

// Detector::set_roi_scales of a two-stage detector: one scale per pooled level (or none), handed
// to its RoI heads' poolers (RoIHeads or CascadeRoIHeads: keep_pool_scales).
template <class Heads>
void set_two_stage_roi_scales(const std::string& arch, const BackboneWithFPNImpl& backbone, Heads& roi_heads,
                              const std::vector<double>& scales) {
  const size_t n = pooled_strides(backbone).size();
  MTPD_CHECK_ARG(scales.empty() || scales.size() == n, arch, ": roi scales: needs ", n, " (one per pooled level), got ",
                 scales.size());
  roi_heads->keep_pool_scales(scales);
}

// Heads: RoIHeads or CascadeRoIHeads (losses(features, proposals, sizes, targets) and
// detect(features, proposals, sizes)). `names`: the detector's feature taps, in the backbone's order.
template <class Heads>
DetectorOutput two_stage_forward(const std::string& arch, BackboneWithFPN& backbone, RegionProposalNetwork& rpn,
                                 Heads& roi_heads, const GeneralizedRCNNTransform& transform,
                                 const std::vector<std::string>& names, int64_t num_classes, bool masks,
                                 const ImageBatch& batch, const RunOptions& what,
                                 const std::string& mask_paste = "torchvision") {
  MTPD_CHECK_ARG(!what.losses || batch.targets.size() == batch.image_sizes.size(), arch,
                 ": losses need targets for every image");
  DetectorOutput out;
  out.image_sizes = batch.image_sizes;
  out.original_sizes = batch.original_sizes;
  out.batch_size = {batch.tensors.size(2), batch.tensors.size(3)};
  out.targets = batch.targets;
  std::vector<at::Tensor> features = backbone->forward(batch.tensors);  // P2..P5, pool
  if (what.features) {
    for (size_t i = 0; i < features.size(); ++i) out.features[names[i]] = features[i];
  }
  if (!what.losses && !what.detections) return out;
  std::vector<at::Tensor> pooled(features.begin(), features.end() - 1);  // RoI pooling: P2..P5
  std::vector<std::array<int64_t, 2>> sizes(batch.image_sizes.begin(), batch.image_sizes.end());
  RPNOutput proposals;
  if (what.losses) {
    std::vector<at::Tensor> gt;
    std::vector<Target> tv;  // torchvision labels: + 1 for the background
    for (size_t i = 0; i < batch.targets.size(); ++i) {
      const Target& t = batch.targets[i];
      if (t.labels.numel() > 0) {
        const int64_t lo = t.labels.min().item<int64_t>(), hi = t.labels.max().item<int64_t>();
        MTPD_CHECK_SHAPE(lo >= 0 && hi < num_classes, arch, ": targets[", i, "].labels must be in 0..",
                         num_classes - 1, ", got ", lo, "..", hi);
      }
      MTPD_CHECK_ARG(!masks || t.masks.defined(), arch, ": losses need targets[", i, "].masks");
      gt.push_back(t.boxes);
      tv.push_back({t.boxes, t.labels + 1, t.masks});
    }
    proposals = rpn->forward(features, sizes, out.batch_size, &gt);
    out.losses = proposals.losses;
    for (auto& [k, v] : roi_heads->losses(pooled, proposals.boxes, sizes, tv)) out.losses[k] = v;
  }
  if (what.detections) {
    at::NoGradGuard no_grad;
    if (!what.losses) proposals = rpn->forward(features, sizes, out.batch_size, nullptr);
    out.detections = roi_heads->detect(pooled, proposals.boxes, sizes);
    for (auto& d : out.detections) d.labels = d.labels - 1;
    transform.postprocess(out.detections, batch.image_sizes, batch.original_sizes);
    if (masks) {
      for (size_t i = 0; i < out.detections.size(); ++i) {
        auto& d = out.detections[i];
        const auto [h, w] = batch.original_sizes[i];
        d.masks = mask_paste == "mmdet" ? paste_masks_mmdet(d.masks, d.boxes, h, w) : paste_masks_in_image(d.masks, d.boxes, h, w);
      }
    }
  }
  return out;
}

}  // namespace mtpd
