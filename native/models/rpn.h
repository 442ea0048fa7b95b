// torchvision.models.detection.rpn: RPNHead (conv tower, objectness logits, box deltas; names
// conv.{i}.0, cls_logits, bbox_pred; checkpoints of the older layout, conv.weight, are renamed
// on load by the TS side) and RegionProposalNetwork: anchors over every FPN level,
// proposals decoded from the deltas, the top pre_nms_top_n of each level, clipped, tiny boxes
// and low scores dropped, NMS per level at nms_thresh, the top post_nms_top_n kept; in training,
// anchors matched at fg/bg IoU (0.7 / 0.3, low-quality matches kept), 256 sampled at 0.5
// positive, and the losses: BCE on the sampled objectness, smooth L1 (beta 1/9) on the positives'
// deltas over the number sampled.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/anchor_generator.h"
#include "models/box_coder.h"
#include "models/matcher.h"
#include "models/sampler.h"

namespace mtpd {

struct RPNOptions {
  std::vector<double> anchor_sizes{32, 64, 128, 256, 512};  // one size per level
  std::vector<double> aspect_ratios{0.5, 1.0, 2.0};
  int64_t conv_depth = 1;  // v1: 1, v2: 2
  // "torchvision": rounded cell anchors, stride image size // grid size; "mmdet": mmdetection's
  // AnchorGenerator(strides, ratios, scales=[8]) of its two-stage configs: unrounded cell anchors
  // tiled at each level's fixed stride (anchor_strides, e.g. 4..64)
  std::string anchor_style = "torchvision";
  std::vector<int64_t> anchor_strides;
  int64_t pre_nms_top_n_train = 2000, pre_nms_top_n_test = 1000;
  int64_t post_nms_top_n_train = 2000, post_nms_top_n_test = 1000;
  double nms_thresh = 0.7;
  double fg_iou_thresh = 0.7, bg_iou_thresh = 0.3;
  int64_t batch_size_per_image = 256;
  double positive_fraction = 0.5;
  double score_thresh = 0.0;
};

class RPNHeadImpl : public torch::nn::Module {
 public:
  RPNHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t conv_depth);
  // per level (N, C, H, W) -> objectness (N, A, H, W) and deltas (N, 4A, H, W) per level
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> forward(const std::vector<at::Tensor>& x);

 private:
  std::vector<torch::nn::Conv2d> convs_;
  torch::nn::Conv2d cls_logits{nullptr}, bbox_pred{nullptr};
};
TORCH_MODULE(RPNHead);

struct RPNOutput {
  std::vector<at::Tensor> boxes;   // per image (P_i, 4) proposals, xyxy in resized pixels, no grad
  std::vector<at::Tensor> scores;  // per image (P_i) objectness probabilities
  std::map<std::string, at::Tensor> losses;  // "loss_objectness", "loss_rpn_box_reg" (with targets)
  at::Tensor anchors;  // (T, 4) every level's anchors, the same for each image of the batch
};

class RegionProposalNetworkImpl : public torch::nn::Module {
 public:
  RegionProposalNetworkImpl(int64_t in_channels, RPNOptions options);
  // features: every FPN level, finest first; image_sizes: per image after resize; batch: padded
  // (H, W); gt_boxes: per image (K_i, 4), or nullptr (no losses).
  RPNOutput forward(const std::vector<at::Tensor>& features, const std::vector<std::array<int64_t, 2>>& image_sizes,
                    std::array<int64_t, 2> batch, const std::vector<at::Tensor>* gt_boxes);
  const RPNOptions& options() const { return options_; }

  RPNHead head{nullptr};

 private:
  RPNOptions options_;
  AnchorGenerator anchor_generator_;
  BoxCoder box_coder_;
  Matcher matcher_;
  BalancedPositiveNegativeSampler sampler_;
};
TORCH_MODULE(RegionProposalNetwork);

}  // namespace mtpd
