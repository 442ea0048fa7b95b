// torchvision.models.detection.roi_heads.RoIHeads with Mask R-CNN's heads (names as torchvision
// 0.14): box_head {fc6, fc7} (TwoMLPHead), box_predictor {cls_score, bbox_pred}
// (FastRCNNPredictor), mask_head {0.0 .. 3.0} (MaskRCNNHeads: 3x3 convs + ReLU),
// mask_predictor {conv5_mask, mask_fcn_logits} (MaskRCNNPredictor: 2x2 deconv, ReLU, 1x1 conv).
// The _v2 builders (maskrcnn_resnet50_fpn_v2, fasterrcnn_resnet50_fpn_v2): box_head is
// FastRCNNConvFCHead {0..3: Conv2dNormActivation(conv 3x3, BatchNorm2d, ReLU), 5: Linear 1024}
// (box_head "conv_fc", head_norm "bn") and mask_head's convs carry BatchNorm2d {i.0, i.1}.
//
// Labels here are torchvision's: 0 is background, classes are 1..num_classes-1.
// Training: proposals + gt boxes matched at IoU 0.5, 512 sampled at 0.25 positive; losses
// "loss_classifier" (cross entropy), "loss_box_reg" (smooth L1, beta 1/9, of the gt class's deltas
// over the number sampled), "loss_mask" (per-pixel sigmoid BCE of the gt class's 28x28 logits
// against the gt mask RoIAligned onto each positive proposal). Inference: softmax scores, per-class
// boxes, score_thresh, NMS per class, detections_per_img; masks of the detected class, sigmoid.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/box_coder.h"
#include "models/conv_norm_activation.h"
#include "models/detector.h"
#include "models/matcher.h"
#include "models/sampler.h"
#include "ops/poolers.h"

namespace mtpd {

// torchvision's RoIHeads.assign_targets_to_proposals for one image: proposals (P, 4) and gt boxes
// (G, 4) with labels (G) (torchvision's, 1..) -> each proposal's matched gt index (P) (0 where
// unmatched) and label (P): its gt's label, 0 (background) below the matcher's low threshold, -1
// (ignored) between its thresholds; all 0 without gt.
std::pair<at::Tensor, at::Tensor> assign_targets_to_proposals(const Matcher& matcher, const at::Tensor& proposals,
                                                              const at::Tensor& gt_boxes,
                                                              const at::Tensor& gt_labels);

// torchvision's RoIHeads.select_training_samples (and mmdetection's assign-and-sample with
// add_gt_as_proposals, which the cascade's stages do): per image the proposals with the gt boxes
// appended (add_gt_proposals), matched (assign_targets_to_proposals), sampled by `sampler` in one
// draw over the batch, and the sampled rows' regression targets encoded by `coder`. Without grad.
struct SampledProposals {
  std::vector<at::Tensor> rois;                // per image (S_i, 4), sampled proposals and gt boxes
  std::vector<at::Tensor> labels;              // (S_i) torchvision labels: 0 background, 1..
  std::vector<at::Tensor> matched_idxs;        // (S_i) index of the matched gt box (0 for background)
  std::vector<at::Tensor> is_gt;               // (S_i) bool: the row is one of the appended gt boxes
  std::vector<at::Tensor> regression_targets;  // (S_i, 4) coder.encode(matched gt box, roi)
};
// proposals: per image (P_i, 4); targets: torchvision labels (1..).
SampledProposals sample_proposals(const std::vector<at::Tensor>& proposals, const std::vector<Target>& targets,
                                  const Matcher& matcher, const BalancedPositiveNegativeSampler& sampler,
                                  const BoxCoder& coder);

struct RoIHeadsOptions {
  int64_t num_classes = 91;  // torchvision's: background included
  int64_t representation_size = 1024;
  std::vector<int64_t> mask_layers{256, 256, 256, 256};
  int64_t mask_dilation = 1;
  int64_t mask_dim_reduced = 256;
  bool masks = true;  // false: Faster R-CNN
  double score_thresh = 0.05, nms_thresh = 0.5;
  int64_t detections_per_img = 100;
  double fg_iou_thresh = 0.5, bg_iou_thresh = 0.5;
  int64_t batch_size_per_image = 512;
  double positive_fraction = 0.25;
  std::array<double, 4> bbox_reg_weights{10.0, 10.0, 5.0, 5.0};
  bool aligned = false;  // RoIAlign's aligned flag of both poolers
  // The poolers' per-level scales: "infer" (torchvision: from the first batch, then kept) or
  // "strides" (mmdetection, detectron2: 1/stride of each pooled level, `strides` below)
  std::string roi_scales = "infer";
  std::vector<int64_t> strides;  // the pooled levels' strides (filled by the detector)
  std::string box_head = "two_mlp";  // "two_mlp" (TwoMLPHead) or "conv_fc" (FastRCNNConvFCHead, _v2)
  std::vector<int64_t> box_conv_layers{256, 256, 256, 256};  // conv_fc's convs (its one FC: representation_size)
  std::string head_norm = "none";    // norm of the conv_fc box head's and the mask head's convs: "none" or "bn"
};

class TwoMLPHeadImpl : public torch::nn::Module {
 public:
  TwoMLPHeadImpl(int64_t in_channels, int64_t representation_size);
  at::Tensor forward(const at::Tensor& x);  // (K, C, 7, 7) -> (K, R)
  torch::nn::Linear fc6{nullptr}, fc7{nullptr};
};
TORCH_MODULE(TwoMLPHead);

// torchvision.models.detection.faster_rcnn.FastRCNNConvFCHead(input_size, conv_layers, fc_layers,
// norm_layer): Sequential(Conv2dNormActivation 3x3 per conv layer, Flatten, (Linear, ReLU) per FC
// layer): names {i}.0 / {i}.1 for the convs, then the Linear layers at their Sequential index
// (4 convs + 1 FC: "5").
class FastRCNNConvFCHeadImpl : public torch::nn::Module {
 public:
  FastRCNNConvFCHeadImpl(int64_t in_channels, const std::vector<int64_t>& conv_layers,
                         const std::vector<int64_t>& fc_layers, const std::string& norm);
  at::Tensor forward(const at::Tensor& x);  // (K, C, 7, 7) -> (K, fc_layers.back())

 private:
  std::vector<Conv2dNormActivation> convs_;
  std::vector<torch::nn::Linear> fcs_;
};
TORCH_MODULE(FastRCNNConvFCHead);

class FastRCNNPredictorImpl : public torch::nn::Module {
 public:
  // box_classes: the classes bbox_pred regresses (-1: num_classes; 1: class-agnostic, as
  // mmdetection's cascade heads)
  FastRCNNPredictorImpl(int64_t in_channels, int64_t num_classes, int64_t box_classes = -1);
  // (K, R) -> scores (K, num_classes), deltas (K, 4 box_classes)
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x);
  torch::nn::Linear cls_score{nullptr}, bbox_pred{nullptr};
};
TORCH_MODULE(FastRCNNPredictor);

class MaskRCNNHeadsImpl : public torch::nn::Module {
 public:
  // norm: "none" (names {i}.0, convs with bias) or "bn" ({i}.0 without bias, {i}.1 BatchNorm2d)
  MaskRCNNHeadsImpl(int64_t in_channels, const std::vector<int64_t>& layers, int64_t dilation,
                    const std::string& norm = "none");
  at::Tensor forward(at::Tensor x);  // (K, C, 14, 14) -> (K, layers.back(), 14, 14)

 private:
  std::vector<Conv2dNormActivation> convs_;
};
TORCH_MODULE(MaskRCNNHeads);

class MaskRCNNPredictorImpl : public torch::nn::Module {
 public:
  MaskRCNNPredictorImpl(int64_t in_channels, int64_t dim_reduced, int64_t num_classes);
  at::Tensor forward(const at::Tensor& x);  // (K, C, 14, 14) -> (K, num_classes, 28, 28)
  torch::nn::ConvTranspose2d conv5_mask{nullptr};
  torch::nn::Conv2d mask_fcn_logits{nullptr};
};
TORCH_MODULE(MaskRCNNPredictor);

class RoIHeadsImpl : public torch::nn::Module {
 public:
  RoIHeadsImpl(int64_t in_channels, RoIHeadsOptions options);
  // features: the pooled FPN levels (P2..P5); proposals: per image (P_i, 4) in resized pixels;
  // targets: resized, torchvision labels (1..), masks (K, H, W) when the model has masks.
  std::map<std::string, at::Tensor> losses(const std::vector<at::Tensor>& features,
                                           const std::vector<at::Tensor>& proposals,
                                           const std::vector<std::array<int64_t, 2>>& image_sizes,
                                           const std::vector<Target>& targets);
  // Detections in resized pixels, torchvision labels; masks (D, 1, 28, 28) probabilities.
  std::vector<Detection> detect(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& proposals,
                                const std::vector<std::array<int64_t, 2>>& image_sizes);
  const RoIHeadsOptions& options() const { return options_; }
  // The poolers' scales in use (empty before an inferring model's first batch), and restoring
  // them (a checkpoint's; ops/poolers.h).
  const std::vector<double>& pool_scales() const { return box_pool_.kept_scales(); }
  void keep_pool_scales(const std::vector<double>& scales);

  TwoMLPHead box_head{nullptr};               // box_head "two_mlp"
  FastRCNNConvFCHead conv_fc_box_head{nullptr}; // box_head "conv_fc" (registered as "box_head")
  FastRCNNPredictor box_predictor{nullptr};
  MaskRCNNHeads mask_head{nullptr};
  MaskRCNNPredictor mask_predictor{nullptr};

 private:
  // RoI features (K, C, 7, 7) -> (K, representation_size) by whichever box head the model has
  at::Tensor box_features(const at::Tensor& x);
  at::Tensor mask_logits(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes,
                         const std::vector<std::array<int64_t, 2>>& image_sizes);
  RoIHeadsOptions options_;
  ops::MultiScaleRoIAlign box_pool_, mask_pool_;
  BoxCoder box_coder_;
  Matcher matcher_;
  BalancedPositiveNegativeSampler sampler_;
};
TORCH_MODULE(RoIHeads);

// ArgumentError (prefixed `what`) unless roi_scales is "infer" or "strides".
void check_roi_scales(const std::string& roi_scales, const std::string& what);
// The fixed pooler scales of roi_scales "strides" (1/stride of each pooled level), none for
// "infer"; ArgumentError (prefixed `what`) for any other value.
std::vector<double> fixed_pool_scales(const std::string& roi_scales, const std::vector<int64_t>& strides,
                                      const std::string& what);

}  // namespace mtpd
