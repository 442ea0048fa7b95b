// torchvision RetinaNetHead (v2 layout of 0.14): classification_head {conv.{0..3}.0, cls_logits}
// and regression_head {conv.{0..3}.0, bbox_reg}; with head_norm "gn" (retinanet v2) every tower
// conv is bias-free and followed by GroupNorm(32) at conv.{i}.1. The heads own their losses:
// sigmoid focal loss (Lin et al. 2017, eq. 5: FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t); ops/focal_loss.h) summed
// over non-ignored anchors / max(1, #foreground), and the box loss ("l1", "smooth_l1", "giou")
// summed over foreground anchors / max(1, #foreground), each averaged over the images.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

#include "models/box_coder.h"

namespace mtpd {

class RetinaNetTowerImpl : public torch::nn::Module {
 public:
  RetinaNetTowerImpl(int64_t channels, const std::string& norm);
  at::Tensor forward(at::Tensor x);

 private:
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::GroupNorm> norms_;
};
TORCH_MODULE(RetinaNetTower);

struct HeadOutputs {
  at::Tensor cls_logits;       // (N, sum_l H_l W_l A, K)
  at::Tensor bbox_regression;  // (N, sum_l H_l W_l A, 4)
  std::vector<int64_t> anchors_per_level;  // H_l W_l A
};

class RetinaNetClassificationHeadImpl : public torch::nn::Module {
 public:
  RetinaNetClassificationHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t num_classes,
                                  double prior_probability, const std::string& norm);
  at::Tensor forward(const std::vector<at::Tensor>& x);  // (N, HWA, K)
  // matched_idxs: per image (HWA) int64 (>= 0 gt index, -1 background, -2 ignored).
  // twice_differentiable: the loss from plain tensor ops (ops/focal_loss.h), for Hessian products.
  at::Tensor compute_loss(const std::vector<at::Tensor>& labels, const at::Tensor& cls_logits,
                          const std::vector<at::Tensor>& matched_idxs, double alpha, double gamma,
                          bool twice_differentiable = false) const;
  int64_t num_classes, num_anchors;

 private:
  RetinaNetTower conv{nullptr};
  torch::nn::Conv2d cls_logits{nullptr};
};
TORCH_MODULE(RetinaNetClassificationHead);

class RetinaNetRegressionHeadImpl : public torch::nn::Module {
 public:
  RetinaNetRegressionHeadImpl(int64_t in_channels, int64_t num_anchors, const std::string& norm,
                              std::string loss_type);
  at::Tensor forward(const std::vector<at::Tensor>& x);  // (N, HWA, 4)
  at::Tensor compute_loss(const std::vector<at::Tensor>& gt_boxes, const at::Tensor& bbox_regression,
                          const at::Tensor& anchors, const std::vector<at::Tensor>& matched_idxs) const;
  std::string loss_type;
  BoxCoder box_coder;

 private:
  RetinaNetTower conv{nullptr};
  torch::nn::Conv2d bbox_reg{nullptr};
};
TORCH_MODULE(RetinaNetRegressionHead);

class RetinaNetHeadImpl : public torch::nn::Module {
 public:
  RetinaNetHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t num_classes, double prior_probability,
                    const std::string& norm, const std::string& loss_type);
  HeadOutputs forward(const std::vector<at::Tensor>& features);
  RetinaNetClassificationHead classification_head{nullptr};
  RetinaNetRegressionHead regression_head{nullptr};
};
TORCH_MODULE(RetinaNetHead);

// torchvision.ops.generalized_box_iou_loss, reduction "sum".
at::Tensor generalized_box_iou_loss_sum(const at::Tensor& boxes1, const at::Tensor& boxes2, double eps = 1e-7);

}  // namespace mtpd
