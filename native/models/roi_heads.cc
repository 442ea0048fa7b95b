#include "models/roi_heads.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/sequential.h>

#include "core/errors.h"
#include "ops/nms.h"
#include "ops/roi_align.h"

namespace mtpd {

TwoMLPHeadImpl::TwoMLPHeadImpl(int64_t in_channels, int64_t r) {
  fc6 = register_module("fc6", torch::nn::Linear(in_channels, r));
  fc7 = register_module("fc7", torch::nn::Linear(r, r));
}

at::Tensor TwoMLPHeadImpl::forward(const at::Tensor& x) {
  return at::relu(fc7->forward(at::relu(fc6->forward(x.flatten(1)))));
}

FastRCNNPredictorImpl::FastRCNNPredictorImpl(int64_t in_channels, int64_t num_classes, int64_t box_classes) {
  cls_score = register_module("cls_score", torch::nn::Linear(in_channels, num_classes));
  bbox_pred = register_module("bbox_pred", torch::nn::Linear(in_channels, (box_classes < 0 ? num_classes : box_classes) * 4));
}

std::pair<at::Tensor, at::Tensor> FastRCNNPredictorImpl::forward(const at::Tensor& x) {
  at::Tensor f = x.flatten(1);
  return {cls_score->forward(f), bbox_pred->forward(f)};
}

namespace {
// Conv2dNormActivation(in, out, 3, padding=dilation, dilation=dilation, norm_layer), with the
// heads' init: kaiming_normal_(fan_out, relu), bias 0.
Conv2dNormActivation head_conv(int64_t in, int64_t out, int64_t dilation, const std::string& norm) {
  ConvNormActOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_size = 3;
  o.padding = dilation;
  o.dilation = dilation;
  o.norm = norm;
  Conv2dNormActivation b(o);
  torch::nn::init::kaiming_normal_(b->conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  if (b->conv->bias.defined()) torch::nn::init::zeros_(b->conv->bias);
  return b;
}
}  // namespace

FastRCNNConvFCHeadImpl::FastRCNNConvFCHeadImpl(int64_t in_channels, const std::vector<int64_t>& conv_layers,
                                               const std::vector<int64_t>& fc_layers, const std::string& norm) {
  MTPD_CHECK_ARG(!fc_layers.empty(), "FastRCNNConvFCHead: fc_layers needs at least one layer");
  int64_t c = in_channels, index = 0;
  for (int64_t l : conv_layers) {
    MTPD_CHECK_ARG(l > 0, "FastRCNNConvFCHead: conv layer widths must be positive, got ", l);
    convs_.push_back(register_module(std::to_string(index++), head_conv(c, l, 1, norm)));
    c = l;
  }
  ++index;  // Flatten
  int64_t features = c * 7 * 7;
  for (int64_t f : fc_layers) {
    MTPD_CHECK_ARG(f > 0, "FastRCNNConvFCHead: fc layer widths must be positive, got ", f);
    fcs_.push_back(register_module(std::to_string(index), torch::nn::Linear(features, f)));
    index += 2;  // Linear, ReLU
    features = f;
  }
}

at::Tensor FastRCNNConvFCHeadImpl::forward(const at::Tensor& x) {
  at::Tensor y = x;
  for (auto& cv : convs_) y = cv->forward(y);  // (K, C_i, 7, 7)
  y = y.flatten(1);                            // (K, C * 49)
  for (auto& fc : fcs_) y = at::relu(fc->forward(y));
  return y;
}

MaskRCNNHeadsImpl::MaskRCNNHeadsImpl(int64_t in_channels, const std::vector<int64_t>& layers, int64_t dilation,
                                     const std::string& norm) {
  int64_t c = in_channels;
  for (size_t i = 0; i < layers.size(); ++i) {
    convs_.push_back(register_module(std::to_string(i), head_conv(c, layers[i], dilation, norm)));
    c = layers[i];
  }
}

at::Tensor MaskRCNNHeadsImpl::forward(at::Tensor x) {
  for (auto& cv : convs_) x = cv->forward(x);
  return x;
}

MaskRCNNPredictorImpl::MaskRCNNPredictorImpl(int64_t in_channels, int64_t dim_reduced, int64_t num_classes) {
  conv5_mask = register_module(
      "conv5_mask", torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in_channels, dim_reduced, 2).stride(2)));
  mask_fcn_logits =
      register_module("mask_fcn_logits", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim_reduced, num_classes, 1)));
  torch::nn::init::kaiming_normal_(conv5_mask->weight, 0.0, torch::kFanOut, torch::kReLU);
  torch::nn::init::kaiming_normal_(mask_fcn_logits->weight, 0.0, torch::kFanOut, torch::kReLU);
}

at::Tensor MaskRCNNPredictorImpl::forward(const at::Tensor& x) {
  return mask_fcn_logits->forward(at::relu(conv5_mask->forward(x)));
}

namespace {
ops::MultiScaleRoIAlign make_pool(int64_t size, const RoIHeadsOptions& h) {
  ops::MultiScaleRoIAlignOptions o;
  o.output_size = size;
  o.sampling_ratio = 2;
  o.aligned = h.aligned;
  o.scales = fixed_pool_scales(h.roi_scales, h.strides, "roi_heads");
  return ops::MultiScaleRoIAlign(o);
}
}  // namespace

void check_roi_scales(const std::string& roi_scales, const std::string& what) {
  MTPD_CHECK_ARG(roi_scales == "infer" || roi_scales == "strides", what,
                 ": roi_scales must be \"infer\" (torchvision) or \"strides\" (mmdetection), got \"", roi_scales, "\"");
}

std::vector<double> fixed_pool_scales(const std::string& roi_scales, const std::vector<int64_t>& strides,
                                      const std::string& what) {
  check_roi_scales(roi_scales, what);
  std::vector<double> out;
  if (roi_scales == "infer") return out;
  MTPD_CHECK_ARG(!strides.empty(), what, ": roi_scales \"strides\" needs the pooled levels' strides");
  for (int64_t s : strides) {
    MTPD_CHECK_ARG(s > 0, what, ": strides must be positive, got ", s);
    out.push_back(1.0 / static_cast<double>(s));
  }
  return out;
}

void RoIHeadsImpl::keep_pool_scales(const std::vector<double>& scales) {
  box_pool_.keep_scales(scales);
  mask_pool_.keep_scales(scales);
}

RoIHeadsImpl::RoIHeadsImpl(int64_t in_channels, RoIHeadsOptions o)
    : options_(std::move(o)),
      box_pool_(make_pool(7, options_)),
      mask_pool_(make_pool(14, options_)),
      box_coder_(options_.bbox_reg_weights),
      matcher_(options_.fg_iou_thresh, options_.bg_iou_thresh, /*allow_low_quality_matches=*/false),
      sampler_(options_.batch_size_per_image, options_.positive_fraction) {
  MTPD_CHECK_ARG(options_.num_classes >= 2, "roi_heads: num_classes (with background) must be at least 2");
  MTPD_CHECK_ARG(options_.representation_size > 0, "roi_heads: representation_size must be positive");
  MTPD_CHECK_ARG(options_.box_head == "two_mlp" || options_.box_head == "conv_fc",
                 "roi_heads: box_head must be \"two_mlp\" or \"conv_fc\", got \"", options_.box_head, "\"");
  MTPD_CHECK_ARG(options_.head_norm == "none" || options_.head_norm == "bn",
                 "roi_heads: head_norm must be \"none\" or \"bn\", got \"", options_.head_norm, "\"");
  if (options_.box_head == "two_mlp")
    box_head = register_module("box_head", TwoMLPHead(in_channels * 7 * 7, options_.representation_size));
  else
    conv_fc_box_head = register_module("box_head", FastRCNNConvFCHead(in_channels, options_.box_conv_layers,
                                                                      std::vector<int64_t>{options_.representation_size},
                                                                      options_.head_norm));
  box_predictor = register_module("box_predictor", FastRCNNPredictor(options_.representation_size, options_.num_classes));
  if (options_.masks) {
    MTPD_CHECK_ARG(!options_.mask_layers.empty(), "roi_heads: mask_layers needs at least one layer");
    mask_head = register_module(
        "mask_head", MaskRCNNHeads(in_channels, options_.mask_layers, options_.mask_dilation, options_.head_norm));
    mask_predictor = register_module(
        "mask_predictor", MaskRCNNPredictor(options_.mask_layers.back(), options_.mask_dim_reduced, options_.num_classes));
  }
}

at::Tensor RoIHeadsImpl::box_features(const at::Tensor& x) {
  return !box_head.is_empty() ? box_head->forward(x) : conv_fc_box_head->forward(x);
}

at::Tensor RoIHeadsImpl::mask_logits(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes,
                                     const std::vector<std::array<int64_t, 2>>& image_sizes) {
  at::Tensor x = mask_pool_(features, boxes, image_sizes);  // (K, C, 14, 14)
  return mask_predictor->forward(mask_head->forward(x));   // (K, num_classes, 28, 28)
}

std::pair<at::Tensor, at::Tensor> assign_targets_to_proposals(const Matcher& matcher, const at::Tensor& proposals,
                                                              const at::Tensor& gt_boxes,
                                                              const at::Tensor& gt_labels) {
  const auto idx = proposals.options().dtype(at::kLong);
  if (gt_boxes.size(0) == 0) return {at::zeros({proposals.size(0)}, idx), at::zeros({proposals.size(0)}, idx)};
  at::Tensor m = matcher(ops::box_iou(gt_boxes, proposals));
  at::Tensor matched = m.clamp_min(0);
  at::Tensor labels = gt_labels.to(proposals.device(), at::kLong).index_select(0, matched);
  labels.masked_fill_(m == Matcher::BELOW_LOW_THRESHOLD, 0);
  labels.masked_fill_(m == Matcher::BETWEEN_THRESHOLDS, -1);
  return {matched, labels};
}

SampledProposals sample_proposals(const std::vector<at::Tensor>& proposals, const std::vector<Target>& targets,
                                  const Matcher& matcher, const BalancedPositiveNegativeSampler& sampler,
                                  const BoxCoder& coder) {
  at::NoGradGuard no_grad;
  const size_t n = proposals.size();
  MTPD_CHECK_SHAPE(targets.size() == n, "sample_proposals: ", targets.size(), " targets for ", n, " images");
  std::vector<at::Tensor> all_labels, all_matched, all_props, all_gt;
  for (size_t i = 0; i < n; ++i) {
    at::Tensor gt = targets[i].boxes.to(proposals[i].options());
    at::Tensor props = at::cat({proposals[i], gt});  // add_gt_proposals: (P_i + G_i, 4)
    const auto flags = props.options().dtype(at::kBool);
    all_gt.push_back(at::cat({at::zeros({proposals[i].size(0)}, flags), at::ones({gt.size(0)}, flags)}));
    auto [matched, lab] = assign_targets_to_proposals(matcher, props, gt, targets[i].labels);
    all_props.push_back(props);
    all_matched.push_back(matched);
    all_labels.push_back(lab);
  }
  auto picked = sampler(all_labels);
  SampledProposals out;
  for (size_t i = 0; i < n; ++i) {
    at::Tensor keep = picked[i].first.logical_or(picked[i].second).nonzero().select(1, 0);  // (S_i)
    out.rois.push_back(all_props[i].index_select(0, keep));
    out.labels.push_back(all_labels[i].index_select(0, keep));
    out.matched_idxs.push_back(all_matched[i].index_select(0, keep));
    out.is_gt.push_back(all_gt[i].index_select(0, keep));
    at::Tensor gt = targets[i].boxes.to(out.rois.back().options());
    if (gt.size(0) == 0) gt = at::zeros({1, 4}, gt.options());
    out.regression_targets.push_back(coder.encode_single(gt.index_select(0, out.matched_idxs.back()), out.rois.back()));
  }
  return out;
}

std::map<std::string, at::Tensor> RoIHeadsImpl::losses(const std::vector<at::Tensor>& features,
                                                       const std::vector<at::Tensor>& proposals_in,
                                                       const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                       const std::vector<Target>& targets) {
  const size_t n = proposals_in.size();
  MTPD_CHECK_SHAPE(targets.size() == n, "roi_heads: ", targets.size(), " targets for ", n, " images");
  // torchvision calls mask_roi_pool in every forward of a mask model (with no positive proposal,
  // too), so its scales are kept from the first forward as the box pooler's are
  if (options_.masks) mask_pool_.scales(features, image_sizes);
  SampledProposals sampled = sample_proposals(proposals_in, targets, matcher_, sampler_, box_coder_);
  const auto& proposals = sampled.rois;
  const auto& labels = sampled.labels;
  const auto& matched_idxs = sampled.matched_idxs;
  const auto& reg_targets = sampled.regression_targets;
  std::map<std::string, at::Tensor> out;
  at::Tensor x = box_features(box_pool_(features, proposals, image_sizes));
  auto [class_logits, box_regression] = box_predictor->forward(x);
  class_logits = class_logits.to(at::kFloat);
  box_regression = box_regression.to(at::kFloat);
  // fastrcnn_loss
  at::Tensor lab = at::cat(labels), reg = at::cat(reg_targets);
  out["loss_classifier"] = at::cross_entropy_loss(class_logits, lab);
  at::Tensor pos = (lab > 0).nonzero().select(1, 0);
  const int64_t k = class_logits.size(0), c = class_logits.size(1);
  // box_regression (K, C*4) -> (K*C, 4), rows pos*C + label
  at::Tensor rows = pos * c + lab.index_select(0, pos);
  out["loss_box_reg"] = at::smooth_l1_loss(box_regression.reshape({k * c, 4}).index_select(0, rows),
                                           reg.index_select(0, pos), at::Reduction::Sum, 1.0 / 9) /
                        static_cast<double>(lab.numel());
  if (!options_.masks) return out;

  // maskrcnn_loss on the positive proposals
  std::vector<at::Tensor> mask_props, mask_targets, mask_labels;
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < n; ++i) {
      MTPD_CHECK_ARG(targets[i].masks.defined(), "mask_rcnn: losses need targets[", i, "].masks");
      at::Tensor p = (labels[i] > 0).nonzero().select(1, 0);
      at::Tensor props = proposals[i].index_select(0, p);
      at::Tensor idx = matched_idxs[i].index_select(0, p);
      mask_props.push_back(props);
      mask_labels.push_back(targets[i].labels.to(props.device(), at::kLong).index_select(0, idx));
      // project_masks_on_boxes: roi_align(gt_masks[:, None], (idx, box), 28, 1.0), adaptive grid
      at::Tensor rois = at::cat({idx.unsqueeze(1).to(props.scalar_type()), props}, 1);
      at::Tensor gm = targets[i].masks.to(props.device()).unsqueeze(1).to(props.scalar_type());
      const int64_t m = 28;
      mask_targets.push_back(idx.numel() == 0 ? at::zeros({0, m, m}, props.options())
                                              : ops::roi_align(gm, rois, m, m, 1.0, -1, false).select(1, 0));
    }
  }
  at::Tensor mt = at::cat(mask_targets), ml = at::cat(mask_labels);
  if (mt.numel() == 0) {
    // no positive proposal: a zero that keeps the mask head in the graph
    at::Tensor z = at::zeros({}, class_logits.options());
    for (const auto& p : mask_predictor->parameters()) z = z + p.sum() * 0.0;
    out["loss_mask"] = z;
    return out;
  }
  at::Tensor logits = mask_logits(features, mask_props, image_sizes).to(at::kFloat);  // (K, C, 28, 28)
  at::Tensor picked = logits.index({at::arange(ml.size(0), ml.options()), ml});      // (K, 28, 28)
  out["loss_mask"] = at::binary_cross_entropy_with_logits(picked, mt);
  return out;
}

std::vector<Detection> RoIHeadsImpl::detect(const std::vector<at::Tensor>& features,
                                            const std::vector<at::Tensor>& proposals,
                                            const std::vector<std::array<int64_t, 2>>& image_sizes) {
  if (options_.masks) mask_pool_.scales(features, image_sizes);  // as in losses()
  at::Tensor x = box_features(box_pool_(features, proposals, image_sizes));
  auto [class_logits, box_regression] = box_predictor->forward(x);
  class_logits = class_logits.to(at::kFloat);
  box_regression = box_regression.to(at::kFloat);
  const int64_t c = class_logits.size(1);
  at::Tensor props = at::cat(proposals);
  at::Tensor pred_boxes = box_coder_.decode_single(box_regression, props).view({-1, c, 4});  // (K, C, 4)
  at::Tensor pred_scores = at::softmax(class_logits, -1);
  std::vector<Detection> dets;
  int64_t start = 0;
  for (size_t i = 0; i < proposals.size(); ++i) {
    const int64_t m = proposals[i].size(0);
    at::Tensor boxes = ops::clip_boxes_to_image(pred_boxes.slice(0, start, start + m), image_sizes[i][0],
                                                image_sizes[i][1]);
    at::Tensor scores = pred_scores.slice(0, start, start + m);
    start += m;
    at::Tensor labels = at::arange(c, scores.options().dtype(at::kLong)).view({1, -1}).expand_as(scores);
    // drop the background column; (M, C-1, 4) -> (M (C-1), 4)
    boxes = boxes.slice(1, 1).reshape({-1, 4});
    scores = scores.slice(1, 1).reshape({-1});
    labels = labels.slice(1, 1).reshape({-1});
    at::Tensor keep = (scores > options_.score_thresh).nonzero().select(1, 0);
    boxes = boxes.index_select(0, keep);
    scores = scores.index_select(0, keep);
    labels = labels.index_select(0, keep);
    // remove_small_boxes(min_size=1e-2)
    at::Tensor ws = boxes.select(1, 2) - boxes.select(1, 0), hs = boxes.select(1, 3) - boxes.select(1, 1);
    keep = (ws >= 1e-2).logical_and(hs >= 1e-2).nonzero().select(1, 0);
    boxes = boxes.index_select(0, keep);
    scores = scores.index_select(0, keep);
    labels = labels.index_select(0, keep);
    keep = ops::batched_nms(boxes, scores, labels, options_.nms_thresh).slice(0, 0, options_.detections_per_img);
    dets.push_back({boxes.index_select(0, keep), scores.index_select(0, keep), labels.index_select(0, keep), {}});
  }
  if (!options_.masks) return dets;
  std::vector<at::Tensor> boxes;
  int64_t total = 0;
  for (const auto& d : dets) {
    boxes.push_back(d.boxes);
    total += d.boxes.size(0);
  }
  if (total == 0) {
    for (auto& d : dets) d.masks = at::zeros({0, 1, 28, 28}, d.boxes.options());
    return dets;
  }
  // maskrcnn_inference: sigmoid, the detected class's map
  at::Tensor logits = mask_logits(features, boxes, image_sizes).to(at::kFloat);
  at::Tensor labels = at::cat(std::vector<at::Tensor>{[&] {
    std::vector<at::Tensor> l;
    for (const auto& d : dets) l.push_back(d.labels);
    return at::cat(l);
  }()});
  at::Tensor prob = logits.sigmoid().index({at::arange(total, labels.options()), labels}).unsqueeze(1);
  start = 0;
  for (auto& d : dets) {
    const int64_t m = d.boxes.size(0);
    d.masks = prob.slice(0, start, start + m);
    start += m;
  }
  return dets;
}

}  // namespace mtpd
