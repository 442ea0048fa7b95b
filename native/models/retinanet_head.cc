#include "models/retinanet_head.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/sequential.h>

#include <cmath>

#include "core/errors.h"
#include "ops/focal_loss.h"

namespace mtpd {

RetinaNetTowerImpl::RetinaNetTowerImpl(int64_t c, const std::string& norm) {
  MTPD_CHECK_ARG(norm.empty() || norm == "none" || norm == "gn", "head_norm must be \"none\" or \"gn\", got \"",
                 norm, "\"");
  const bool gn = norm == "gn";
  if (gn) MTPD_CHECK_ARG(c % 32 == 0, "head_norm \"gn\" needs channels divisible by 32, got ", c);
  for (int i = 0; i < 4; ++i) {
    // Conv2dNormActivation(c, c): Sequential(conv3x3 [bias iff no norm], [GroupNorm(32, c)], ReLU)
    torch::nn::Sequential seq;
    torch::nn::Conv2d cv(torch::nn::Conv2dOptions(c, c, 3).stride(1).padding(1).bias(!gn));
    torch::nn::init::normal_(cv->weight, 0.0, 0.01);
    if (!gn) torch::nn::init::constant_(cv->bias, 0.0);
    seq->push_back(cv);
    convs_.push_back(cv);
    if (gn) {
      torch::nn::GroupNorm g(torch::nn::GroupNormOptions(32, c));
      seq->push_back(g);
      norms_.push_back(g);
    }
    register_module(std::to_string(i), seq);
  }
}

at::Tensor RetinaNetTowerImpl::forward(at::Tensor x) {
  for (size_t i = 0; i < convs_.size(); ++i) {
    x = convs_[i]->forward(x);
    if (!norms_.empty()) x = norms_[i]->forward(x);
    x = x.relu_();
  }
  return x;
}

RetinaNetClassificationHeadImpl::RetinaNetClassificationHeadImpl(int64_t in_channels, int64_t num_anchors_,
                                                                 int64_t num_classes_, double prior,
                                                                 const std::string& norm)
    : num_classes(num_classes_), num_anchors(num_anchors_) {
  MTPD_CHECK_ARG(num_classes > 0, "num_classes must be positive, got ", num_classes);
  MTPD_CHECK_ARG(prior > 0 && prior < 1, "prior_probability must be in (0, 1), got ", prior);
  conv = register_module("conv", RetinaNetTower(in_channels, norm));
  cls_logits = register_module(
      "cls_logits", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, num_anchors * num_classes, 3).padding(1)));
  torch::nn::init::normal_(cls_logits->weight, 0.0, 0.01);
  torch::nn::init::constant_(cls_logits->bias, -std::log((1 - prior) / prior));
}

at::Tensor RetinaNetClassificationHeadImpl::forward(const std::vector<at::Tensor>& x) {
  std::vector<at::Tensor> all;
  for (const auto& f : x) {
    at::Tensor y = cls_logits->forward(conv->forward(f));
    const int64_t n = y.size(0), h = y.size(2), w = y.size(3);
    // (N, A*K, H, W) -> (N, A, K, H, W) -> (N, H, W, A, K) -> (N, HWA, K)
    y = y.view({n, -1, num_classes, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, num_classes});
    all.push_back(y);
  }
  return at::cat(all, 1);
}

at::Tensor RetinaNetClassificationHeadImpl::compute_loss(const std::vector<at::Tensor>& labels,
                                                         const at::Tensor& logits,
                                                         const std::vector<at::Tensor>& matched_idxs, double alpha,
                                                         double gamma, bool twice_differentiable) const {
  at::Tensor total;
  for (size_t i = 0; i < labels.size(); ++i) {
    const at::Tensor& m = matched_idxs[i];
    const at::Tensor fg = m >= 0;
    const int64_t num_fg = fg.sum().item<int64_t>();
    // Each anchor's target class: its matched box's label (foreground), or -1 / -2 as matched.
    at::Tensor classes = m;
    if (num_fg > 0) {
      at::Tensor cls = labels[i].index_select(0, m.clamp_min(0));
      at::Tensor fg_cls = cls.masked_select(fg);
      MTPD_CHECK_ARG(fg_cls.min().item<int64_t>() >= 0 && fg_cls.max().item<int64_t>() < num_classes,
                     "target labels must be in 0..", num_classes - 1, " (num_classes ", num_classes, ")");
      classes = at::where(fg, cls, m);
    }
    at::Tensor l = ops::sigmoid_focal_loss_sum(logits[static_cast<int64_t>(i)], classes, alpha, gamma,
                                               twice_differentiable) /
                   static_cast<double>(std::max<int64_t>(1, num_fg));
    total = total.defined() ? total + l : l;
  }
  return total / static_cast<double>(labels.size());
}

RetinaNetRegressionHeadImpl::RetinaNetRegressionHeadImpl(int64_t in_channels, int64_t num_anchors,
                                                         const std::string& norm, std::string loss)
    : loss_type(std::move(loss)) {
  MTPD_CHECK_ARG(loss_type == "l1" || loss_type == "smooth_l1" || loss_type == "giou",
                 "box_loss must be l1, smooth_l1 or giou, got \"", loss_type, "\"");
  conv = register_module("conv", RetinaNetTower(in_channels, norm));
  bbox_reg = register_module("bbox_reg",
                             torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, num_anchors * 4, 3).padding(1)));
  torch::nn::init::normal_(bbox_reg->weight, 0.0, 0.01);
  torch::nn::init::zeros_(bbox_reg->bias);
}

at::Tensor RetinaNetRegressionHeadImpl::forward(const std::vector<at::Tensor>& x) {
  std::vector<at::Tensor> all;
  for (const auto& f : x) {
    at::Tensor y = bbox_reg->forward(conv->forward(f));
    const int64_t n = y.size(0), h = y.size(2), w = y.size(3);
    // (N, A*4, H, W) -> (N, HWA, 4)
    y = y.view({n, -1, 4, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, 4});
    all.push_back(y);
  }
  return at::cat(all, 1);
}

at::Tensor generalized_box_iou_loss_sum(const at::Tensor& b1, const at::Tensor& b2, double eps) {
  // torchvision.ops.generalized_box_iou_loss: 1 - (iou - (area_c - union) / area_c)
  at::Tensor x1 = b1.select(1, 0), y1 = b1.select(1, 1), x2 = b1.select(1, 2), y2 = b1.select(1, 3);
  at::Tensor x1g = b2.select(1, 0), y1g = b2.select(1, 1), x2g = b2.select(1, 2), y2g = b2.select(1, 3);
  at::Tensor xkis1 = at::max(x1, x1g), ykis1 = at::max(y1, y1g), xkis2 = at::min(x2, x2g), ykis2 = at::min(y2, y2g);
  at::Tensor intsct = at::zeros_like(x1);
  at::Tensor mask = (ykis2 > ykis1).logical_and(xkis2 > xkis1);
  intsct = at::where(mask, (xkis2 - xkis1) * (ykis2 - ykis1), intsct);
  at::Tensor uni = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsct;
  at::Tensor iou = intsct / (uni + eps);
  at::Tensor xc1 = at::min(x1, x1g), yc1 = at::min(y1, y1g), xc2 = at::max(x2, x2g), yc2 = at::max(y2, y2g);
  at::Tensor area_c = (xc2 - xc1) * (yc2 - yc1);
  at::Tensor miou = iou - ((area_c - uni) / (area_c + eps));
  return (1 - miou).sum();
}

at::Tensor RetinaNetRegressionHeadImpl::compute_loss(const std::vector<at::Tensor>& gt_boxes,
                                                     const at::Tensor& bbox_regression, const at::Tensor& anchors,
                                                     const std::vector<at::Tensor>& matched_idxs) const {
  at::Tensor total;
  for (size_t i = 0; i < gt_boxes.size(); ++i) {
    at::Tensor fg = (matched_idxs[i] >= 0).nonzero().squeeze(1);
    const int64_t num_fg = fg.numel();
    at::Tensor matched = gt_boxes[i].numel() ? gt_boxes[i].index_select(0, matched_idxs[i].index_select(0, fg))
                                             : at::zeros({0, 4}, bbox_regression.options());
    at::Tensor reg = bbox_regression[static_cast<int64_t>(i)].index_select(0, fg);
    at::Tensor anc = anchors.index_select(0, fg);
    at::Tensor l;
    if (loss_type == "l1") {
      l = at::l1_loss(reg, box_coder.encode_single(matched, anc), at::Reduction::Sum);
    } else if (loss_type == "smooth_l1") {
      l = at::smooth_l1_loss(reg, box_coder.encode_single(matched, anc), at::Reduction::Sum, 1.0);
    } else {
      l = generalized_box_iou_loss_sum(box_coder.decode_single(reg, anc), matched);
    }
    l = l / static_cast<double>(std::max<int64_t>(1, num_fg));
    total = total.defined() ? total + l : l;
  }
  return total / static_cast<double>(std::max<size_t>(1, gt_boxes.size()));
}

RetinaNetHeadImpl::RetinaNetHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t num_classes, double prior,
                                     const std::string& norm, const std::string& loss_type) {
  classification_head = register_module(
      "classification_head", RetinaNetClassificationHead(in_channels, num_anchors, num_classes, prior, norm));
  regression_head =
      register_module("regression_head", RetinaNetRegressionHead(in_channels, num_anchors, norm, loss_type));
}

HeadOutputs RetinaNetHeadImpl::forward(const std::vector<at::Tensor>& features) {
  HeadOutputs out;
  out.cls_logits = classification_head->forward(features);
  out.bbox_regression = regression_head->forward(features);
  const int64_t a = classification_head->num_anchors;
  for (const auto& f : features) out.anchors_per_level.push_back(f.size(2) * f.size(3) * a);
  return out;
}

}  // namespace mtpd
