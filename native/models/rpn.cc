#include "models/rpn.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>

#include <algorithm>

#include "core/errors.h"
#include "ops/nms.h"

namespace mtpd {

RPNHeadImpl::RPNHeadImpl(int64_t c, int64_t num_anchors, int64_t conv_depth) {
  MTPD_CHECK_ARG(conv_depth >= 1, "rpn: conv_depth must be at least 1, got ", conv_depth);
  torch::nn::ModuleList tower;  // conv.{i}: Sequential(conv, ReLU) -> names conv.{i}.0
  for (int64_t i = 0; i < conv_depth; ++i) {
    // Conv2dNormActivation(c, c, 3, norm_layer=None): Sequential(conv3x3 with bias, ReLU)
    torch::nn::Sequential block;
    torch::nn::Conv2d cv(torch::nn::Conv2dOptions(c, c, 3).stride(1).padding(1).bias(true));
    block->push_back(cv);
    tower->push_back(block);
    convs_.push_back(cv);
  }
  register_module("conv", tower);
  cls_logits = register_module("cls_logits", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, num_anchors, 1)));
  bbox_pred = register_module("bbox_pred", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, num_anchors * 4, 1)));
  std::vector<torch::nn::Conv2d> all = convs_;
  all.push_back(cls_logits);
  all.push_back(bbox_pred);
  for (auto& cv : all) {
    torch::nn::init::normal_(cv->weight, 0.0, 0.01);
    torch::nn::init::constant_(cv->bias, 0.0);
  }
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> RPNHeadImpl::forward(const std::vector<at::Tensor>& x) {
  std::vector<at::Tensor> logits, deltas;
  for (const auto& f : x) {
    at::Tensor t = f;
    for (auto& cv : convs_) t = at::relu(cv->forward(t));
    logits.push_back(cls_logits->forward(t));
    deltas.push_back(bbox_pred->forward(t));
  }
  return {logits, deltas};
}

namespace {

AnchorGenerator rpn_anchors(const RPNOptions& o) {
  std::vector<std::vector<double>> sizes, ratios;
  for (double s : o.anchor_sizes) {
    sizes.push_back({s});
    ratios.push_back(o.aspect_ratios);
  }
  return AnchorGenerator(sizes, ratios, /*round=*/o.anchor_style != "mmdet");
}

// (N, A*C, H, W) -> (N, H*W*A, C) (torchvision's permute_and_flatten)
at::Tensor permute_and_flatten(const at::Tensor& x, int64_t c) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  return x.view({n, -1, c, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, c});
}

}  // namespace

RegionProposalNetworkImpl::RegionProposalNetworkImpl(int64_t in_channels, RPNOptions o)
    : options_(std::move(o)),
      anchor_generator_(rpn_anchors(options_)),
      // mmdet: mmdetection's delta2bbox (dw, dh clamped on both sides), as its RPNHead decodes
      box_coder_({1.0, 1.0, 1.0, 1.0}, std::log(1000.0 / 16), /*mmdet=*/options_.anchor_style == "mmdet"),
      matcher_(options_.fg_iou_thresh, options_.bg_iou_thresh, /*allow_low_quality_matches=*/true),
      sampler_(options_.batch_size_per_image, options_.positive_fraction) {
  MTPD_CHECK_ARG(options_.anchor_style == "torchvision" || options_.anchor_style == "mmdet",
                 "rpn: anchor_style must be \"torchvision\" or \"mmdet\", got \"", options_.anchor_style, "\"");
  MTPD_CHECK_ARG(options_.anchor_style != "mmdet" || options_.anchor_strides.size() == options_.anchor_sizes.size(),
                 "rpn: anchor_style \"mmdet\" needs one stride per level (", options_.anchor_sizes.size(), "), got ",
                 options_.anchor_strides.size());
  head = register_module("head", RPNHead(in_channels, anchor_generator_.num_anchors_per_location()[0],
                                         options_.conv_depth));
}

RPNOutput RegionProposalNetworkImpl::forward(const std::vector<at::Tensor>& features,
                                             const std::vector<std::array<int64_t, 2>>& image_sizes,
                                             std::array<int64_t, 2> batch, const std::vector<at::Tensor>* gt_boxes) {
  MTPD_CHECK_SHAPE(features.size() == options_.anchor_sizes.size(), "rpn: ", features.size(),
                   " feature levels but anchor_sizes has ", options_.anchor_sizes.size(), " entries");
  auto [logits, deltas] = head->forward(features);
  const int64_t n = features[0].size(0);
  std::vector<std::array<int64_t, 2>> grids;
  std::vector<int64_t> per_level;
  std::vector<at::Tensor> obj_flat, del_flat;
  for (size_t l = 0; l < features.size(); ++l) {
    grids.push_back({features[l].size(2), features[l].size(3)});
    per_level.push_back(logits[l].size(1) * logits[l].size(2) * logits[l].size(3));
    obj_flat.push_back(permute_and_flatten(logits[l].to(at::kFloat), 1));
    del_flat.push_back(permute_and_flatten(deltas[l].to(at::kFloat), 4));
  }
  // (N*T, 1) objectness, (N*T, 4) deltas; anchors (T, 4), the same for every image
  at::Tensor objectness = at::cat(obj_flat, 1).flatten(0, -2);
  at::Tensor pred_deltas = at::cat(del_flat, 1).reshape({-1, 4});
  at::Tensor anchors = anchor_generator_.anchors(
      grids, batch, at::kFloat, features[0].device(),
      options_.anchor_style == "mmdet" ? options_.anchor_strides : std::vector<int64_t>{});
  const int64_t t = anchors.size(0);
  at::Tensor all_anchors = anchors.repeat({n, 1});  // (N*T, 4)

  RPNOutput out;
  out.anchors = anchors;
  {
    at::NoGradGuard no_grad;
    at::Tensor proposals = box_coder_.decode_single(pred_deltas.detach(), all_anchors).view({n, t, 4});
    at::Tensor ob = objectness.detach().reshape({n, t});
    // top pre_nms_top_n per level
    const int64_t pre = is_training() ? options_.pre_nms_top_n_train : options_.pre_nms_top_n_test;
    const int64_t post = is_training() ? options_.post_nms_top_n_train : options_.post_nms_top_n_test;
    std::vector<at::Tensor> top, lvls;
    int64_t offset = 0;
    for (size_t l = 0; l < per_level.size(); ++l) {
      const int64_t m = per_level[l];
      at::Tensor o = ob.slice(1, offset, offset + m);
      at::Tensor idx = std::get<1>(o.topk(std::min(pre, m), 1));  // (N, k)
      top.push_back(idx + offset);
      lvls.push_back(at::full({std::min(pre, m)}, static_cast<int64_t>(l), idx.options()));
      offset += m;
    }
    at::Tensor top_idx = at::cat(top, 1);  // (N, sum k)
    at::Tensor levels = at::cat(lvls, 0);  // (sum k)
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor ti = top_idx[i];
      at::Tensor boxes = proposals[i].index_select(0, ti);
      at::Tensor scores = at::sigmoid(ob[i].index_select(0, ti));
      at::Tensor lvl = levels;
      boxes = ops::clip_boxes_to_image(boxes, image_sizes[i][0], image_sizes[i][1]);
      // remove_small_boxes(min_size=1e-3), then scores >= score_thresh
      at::Tensor ws = boxes.select(1, 2) - boxes.select(1, 0), hs = boxes.select(1, 3) - boxes.select(1, 1);
      at::Tensor keep = (ws >= 1e-3).logical_and(hs >= 1e-3).logical_and(scores >= options_.score_thresh);
      keep = keep.nonzero().select(1, 0);
      boxes = boxes.index_select(0, keep);
      scores = scores.index_select(0, keep);
      lvl = lvl.index_select(0, keep);
      at::Tensor k = ops::batched_nms(boxes, scores, lvl, options_.nms_thresh).slice(0, 0, post);
      out.boxes.push_back(boxes.index_select(0, k));
      out.scores.push_back(scores.index_select(0, k));
    }
  }
  if (!gt_boxes) return out;

  MTPD_CHECK_SHAPE(static_cast<int64_t>(gt_boxes->size()) == n, "rpn: ", gt_boxes->size(), " targets for ", n,
                   " images");
  std::vector<at::Tensor> labels, reg_targets;
  {
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor& gt = (*gt_boxes)[static_cast<size_t>(i)];
      if (gt.size(0) == 0) {
        labels.push_back(at::zeros({t}, anchors.options()));
        reg_targets.push_back(box_coder_.encode_single(at::zeros({t, 4}, anchors.options()), anchors));
        continue;
      }
      at::Tensor g = gt.to(anchors.options());
      at::Tensor matched = matcher_(ops::box_iou(g, anchors));
      at::Tensor lab = (matched >= 0).to(at::kFloat);
      lab.masked_fill_(matched == Matcher::BELOW_LOW_THRESHOLD, 0.0);
      lab.masked_fill_(matched == Matcher::BETWEEN_THRESHOLDS, -1.0);
      labels.push_back(lab);
      reg_targets.push_back(box_coder_.encode_single(g.index_select(0, matched.clamp_min(0)), anchors));
    }
  }
  auto sampled = sampler_(labels);
  std::vector<at::Tensor> pos_masks, neg_masks;
  for (auto& [p, q] : sampled) {
    pos_masks.push_back(p);
    neg_masks.push_back(q);
  }
  at::Tensor pos = at::cat(pos_masks).nonzero().select(1, 0);
  at::Tensor neg = at::cat(neg_masks).nonzero().select(1, 0);
  at::Tensor inds = at::cat({pos, neg});
  at::Tensor lab = at::cat(labels), reg = at::cat(reg_targets);
  // smooth_l1(beta=1/9, sum) / #sampled; BCE-with-logits mean over the sampled anchors
  out.losses["loss_rpn_box_reg"] =
      at::smooth_l1_loss(pred_deltas.index_select(0, pos), reg.index_select(0, pos), at::Reduction::Sum, 1.0 / 9) /
      static_cast<double>(inds.numel());
  out.losses["loss_objectness"] = at::binary_cross_entropy_with_logits(objectness.flatten().index_select(0, inds),
                                                                       lab.index_select(0, inds));
  return out;
}

}  // namespace mtpd
