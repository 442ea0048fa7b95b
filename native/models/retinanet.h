// torchvision.models.detection.RetinaNet over a BackboneWithFPN (ResNet/ResNeXt or Swin body),
// registered as "retinanet". Names match torchvision's retinanet_resnet50_fpn(_v2) state dicts:
// backbone.body.*, backbone.fpn.*, head.classification_head.*, head.regression_head.*.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "models/anchor_generator.h"
#include "models/backbone.h"
#include "models/detector.h"
#include "models/matcher.h"
#include "models/retinanet_head.h"
#include "models/transform.h"

namespace mtpd {

struct RetinaNetOptions {
  BackboneOptions backbone;
  int64_t num_classes = 91;
  TransformOptions transform;
  std::vector<double> anchor_sizes{32, 64, 128, 256, 512};  // per level x -> (x, int(x 2^1/3), int(x 2^2/3))
  std::vector<double> aspect_ratios{0.5, 1.0, 2.0};
  // "torchvision": sizes (x, int(x 2^1/3), int(x 2^2/3)), cell anchors rounded; "mmdet": mmdetection's
  // AnchorGenerator(octave_base_scale, scales_per_octave=3, center_offset=0): x 2^(i/3) unrounded
  // (mmdet also tiles every level with its fixed stride 2^level, not image_size // grid_size)
  std::string anchor_style = "torchvision";
  // "torchvision" or "mmdet": DeltaXYWHBBoxCoder's decode (box_coder.h)
  std::string box_coder = "torchvision";
  double score_thresh = 0.05;
  double nms_thresh = 0.5;
  int64_t detections_per_img = 300;
  double fg_iou_thresh = 0.5;
  double bg_iou_thresh = 0.4;
  int64_t topk_candidates = 1000;
  double prior_probability = 0.01;
  double focal_alpha = 0.25;
  double focal_gamma = 2.0;
  std::string box_loss = "l1";    // v1 "l1"; v2 "giou"
  std::string head_norm = "none"; // v1 "none"; v2 "gn"

  static RetinaNetOptions from_json(const Json& o);
  Json to_json() const;
};

class RetinaNetImpl : public Detector {
 public:
  explicit RetinaNetImpl(RetinaNetOptions options);

  ImageBatch prepare(const std::vector<at::Tensor>& images, const std::vector<Target>* targets) override;
  DetectorOutput forward_batch(const ImageBatch& batch, const RunOptions& what) override;
  std::vector<std::string> feature_names() const override;
  int64_t feature_channels() const override { return backbone->out_channels(); }
  std::vector<int64_t> feature_strides() const override;
  std::vector<ImageSize> eval_image_sizes(const std::vector<ImageSize>& original_sizes) const override;
  int64_t num_classes() const override { return options_.num_classes; }
  std::string arch() const override { return "retinanet"; }
  Json config() const override { return options_.to_json(); }
  const RetinaNetOptions& options() const { return options_; }

  BackboneWithFPN backbone{nullptr};
  RetinaNetHead head{nullptr};

 private:
  std::map<std::string, at::Tensor> compute_loss(const std::vector<Target>& targets, const HeadOutputs& out,
                                                 const at::Tensor& anchors, bool twice_differentiable);
  // original_sizes: mmdet's order, boxes rescaled to the original image before NMS (resize_style
  // "mmdet"), boxes of no width or height dropped (test_cfg min_bbox_size 0); null: torchvision's, NMS in resized pixels and the transform maps them back after.
  std::vector<Detection> postprocess_detections(const HeadOutputs& out, const at::Tensor& anchors,
                                                const std::vector<ImageSize>& image_sizes,
                                                const std::vector<ImageSize>* original_sizes);
  RetinaNetOptions options_;
  GeneralizedRCNNTransform transform_;
  AnchorGenerator anchor_generator_;
  Matcher matcher_;
  BoxCoder box_coder_;
};
TORCH_MODULE(RetinaNet);

}  // namespace mtpd
