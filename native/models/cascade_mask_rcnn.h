// Cascade Mask R-CNN (and Cascade R-CNN: the same without masks), registered as
// "cascade_mask_rcnn" / "cascade_rcnn": Mask R-CNN's backbone (ResNet/ResNeXt/Swin body, FPN
// P2..P5 + LastLevelMaxPool) and RPN (torchvision's), with the cascade's RoI heads
// (models/cascade_roi_heads.h: mmdetection 2.x's CascadeRoIHead semantics). Options are
// mask_rcnn's (backbone, num_classes without background, min_size, max_size, width_mult,
// rpn_*, box_score_thresh, box_nms_thresh, box_detections_per_img, box_batch_size_per_image,
// box_positive_fraction, representation_size, mask_*, roi_aligned (default true here, mmdet's))
// plus the cascade's own (stage_iou_thresholds, stage_loss_weights, stage_bbox_reg_weights,
// class_agnostic, box_loss_beta, roi_sampling_ratio, mask_per_stage, binarize_mask_targets).
// Names: backbone.*, rpn.head.* as mask_rcnn; roi_heads.box_head.{s}.*, roi_heads.box_predictor.{s}.*,
// roi_heads.mask_head.{m}.*, roi_heads.mask_predictor.{m}.*.
// Labels follow the detector contract (0..num_classes-1); feature taps p2..p6, strides 4..64.
// Losses: "loss_objectness", "loss_rpn_box_reg", and per stage s "s{s}.loss_classifier",
// "s{s}.loss_box_reg", "s{s}.loss_mask" (already times the stage's loss weight).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/cascade_roi_heads.h"
#include "models/detector.h"
#include "models/mask_rcnn.h"
#include "models/rpn.h"
#include "models/transform.h"

namespace mtpd {

struct CascadeMaskRCNNOptions {
  MaskRCNNOptions base;  // backbone, transform, rpn; base.roi's sampling and test settings
  CascadeRoIHeadsOptions cascade;  // filled from base.roi and the cascade keys, widths scaled

  static CascadeMaskRCNNOptions from_json(const Json& o, bool masks);
  Json to_json() const;
};

class CascadeMaskRCNNImpl : public Detector {
 public:
  explicit CascadeMaskRCNNImpl(CascadeMaskRCNNOptions options);

  ImageBatch prepare(const std::vector<at::Tensor>& images, const std::vector<Target>* targets) override;
  DetectorOutput forward_batch(const ImageBatch& batch, const RunOptions& what) override;
  std::vector<std::string> feature_names() const override;
  int64_t feature_channels() const override { return backbone->out_channels(); }
  std::vector<int64_t> feature_strides() const override;
  std::vector<ImageSize> eval_image_sizes(const std::vector<ImageSize>& original_sizes) const override;
  int64_t num_classes() const override { return options_.base.num_classes; }
  std::string arch() const override { return options_.base.masks ? "cascade_mask_rcnn" : "cascade_rcnn"; }
  Json config() const override { return options_.to_json(); }
  std::vector<double> roi_scales() const override { return roi_heads->pool_scales(); }
  void set_roi_scales(const std::vector<double>& scales) override;

  BackboneWithFPN backbone{nullptr};
  RegionProposalNetwork rpn{nullptr};
  CascadeRoIHeads roi_heads{nullptr};

 private:
  CascadeMaskRCNNOptions options_;
  GeneralizedRCNNTransform transform_;
};
TORCH_MODULE(CascadeMaskRCNN);

}  // namespace mtpd
