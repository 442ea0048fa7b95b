// torchvision.models.detection.MaskRCNN (and FasterRCNN: the same without the mask branch) over a
// BackboneWithFPN (ResNet/ResNeXt or Swin body; P2..P5 + LastLevelMaxPool), registered as
// "mask_rcnn" / "faster_rcnn". Names match torchvision's maskrcnn_resnet50_fpn state dicts:
// backbone.body.*, backbone.fpn.*, rpn.head.*, roi_heads.box_head.*, roi_heads.box_predictor.*,
// roi_heads.mask_head.*, roi_heads.mask_predictor.* (older checkpoints' rpn.head.conv.* and
// mask_head.mask_fcn{i}.* are renamed as torchvision does by the TS loader: src/detector.ts).
//
// Labels follow the detector contract: 0..num_classes-1 are real classes (no background label);
// the box and mask predictors have num_classes + 1 outputs, output 0 being torchvision's
// background, so torchvision's num_classes is this num_classes + 1 (COCO checkpoints: 90, and
// label l here is torchvision's label l + 1, the COCO category id minus 1).
// Feature taps: p2..p6 ("p6" is torchvision's "pool"), strides 4..64.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/detector.h"
#include "models/roi_heads.h"
#include "models/rpn.h"
#include "models/transform.h"

namespace mtpd {

struct MaskRCNNOptions {
  BackboneOptions backbone;  // returned_layers {1, 2, 3, 4}, extra_blocks "pool"
  int64_t num_classes = 90;  // real classes
  TransformOptions transform;
  RPNOptions rpn;
  RoIHeadsOptions roi;       // representation_size, mask layers before width_mult
  bool masks = true;

  static MaskRCNNOptions from_json(const Json& o, bool masks);
  Json to_json() const;
};

class MaskRCNNImpl : public Detector {
 public:
  explicit MaskRCNNImpl(MaskRCNNOptions options);

  ImageBatch prepare(const std::vector<at::Tensor>& images, const std::vector<Target>* targets) override;
  DetectorOutput forward_batch(const ImageBatch& batch, const RunOptions& what) override;
  std::vector<std::string> feature_names() const override;
  int64_t feature_channels() const override { return backbone->out_channels(); }
  std::vector<int64_t> feature_strides() const override;
  std::vector<ImageSize> eval_image_sizes(const std::vector<ImageSize>& original_sizes) const override;
  int64_t num_classes() const override { return options_.num_classes; }
  std::string arch() const override { return options_.masks ? "mask_rcnn" : "faster_rcnn"; }
  Json config() const override { return options_.to_json(); }
  std::vector<double> roi_scales() const override { return roi_heads->pool_scales(); }
  void set_roi_scales(const std::vector<double>& scales) override;

  BackboneWithFPN backbone{nullptr};
  RegionProposalNetwork rpn{nullptr};
  RoIHeads roi_heads{nullptr};

 private:
  MaskRCNNOptions options_;
  GeneralizedRCNNTransform transform_;
};
TORCH_MODULE(MaskRCNN);

}  // namespace mtpd
