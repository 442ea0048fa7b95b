#include "models/cascade_roi_heads.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.h"
#include "ops/nms.h"
#include "ops/roi_align.h"

namespace mtpd {

namespace {

ops::MultiScaleRoIAlign make_pool(int64_t size, const CascadeRoIHeadsOptions& h) {
  ops::MultiScaleRoIAlignOptions o;
  o.output_size = size;
  o.sampling_ratio = h.sampling_ratio;
  o.aligned = h.aligned;
  o.scales = fixed_pool_scales(h.roi_scales, h.strides, "cascade_roi_heads");
  return ops::MultiScaleRoIAlign(o);
}

std::vector<BoxCoder> make_coders(const CascadeRoIHeadsOptions& o) {
  std::vector<BoxCoder> out;
  for (const auto& w : o.stage_bbox_reg_weights) out.emplace_back(w);
  return out;
}

std::vector<Matcher> make_matchers(const CascadeRoIHeadsOptions& o) {
  std::vector<Matcher> out;
  // mmdet's MaxIoUAssigner(pos_iou_thr = neg_iou_thr = min_pos_iou = t, match_low_quality=False)
  for (double t : o.stage_iou_thresholds) out.emplace_back(t, t, /*allow_low_quality_matches=*/false);
  return out;
}

// Rows [start, start + n) of every tensor's first dimension, per image.
std::vector<at::Tensor> split_rows(const at::Tensor& t, const std::vector<int64_t>& counts) {
  std::vector<at::Tensor> out;
  int64_t start = 0;
  for (int64_t n : counts) {
    out.push_back(t.slice(0, start, start + n));
    start += n;
  }
  return out;
}

std::vector<int64_t> row_counts(const std::vector<at::Tensor>& boxes) {
  std::vector<int64_t> out;
  for (const auto& b : boxes) out.push_back(b.size(0));
  return out;
}

}  // namespace

CascadeRoIHeadsImpl::CascadeRoIHeadsImpl(int64_t in_channels, CascadeRoIHeadsOptions o)
    : options_(std::move(o)),
      box_pool_(make_pool(7, options_)),
      mask_pool_(make_pool(14, options_)),
      box_coders_(make_coders(options_)),
      matchers_(make_matchers(options_)),
      sampler_(options_.batch_size_per_image, options_.positive_fraction) {
  const int64_t s = options_.num_stages();
  MTPD_CHECK_ARG(s >= 1, "cascade_roi_heads: stage_iou_thresholds needs at least one stage");
  MTPD_CHECK_ARG(static_cast<int64_t>(options_.stage_loss_weights.size()) == s, "cascade_roi_heads: ",
                 options_.stage_loss_weights.size(), " stage_loss_weights for ", s, " stages");
  MTPD_CHECK_ARG(static_cast<int64_t>(options_.stage_bbox_reg_weights.size()) == s, "cascade_roi_heads: ",
                 options_.stage_bbox_reg_weights.size(), " stage_bbox_reg_weights for ", s, " stages");
  MTPD_CHECK_ARG(options_.num_classes >= 2, "cascade_roi_heads: num_classes (with background) must be at least 2");
  MTPD_CHECK_ARG(options_.representation_size > 0, "cascade_roi_heads: representation_size must be positive");
  box_head = register_module("box_head", torch::nn::ModuleList());
  box_predictor = register_module("box_predictor", torch::nn::ModuleList());
  for (int64_t i = 0; i < s; ++i) {
    box_head->push_back(TwoMLPHead(in_channels * 7 * 7, options_.representation_size));
    box_predictor->push_back(FastRCNNPredictor(options_.representation_size, options_.num_classes,
                                               options_.class_agnostic ? 1 : -1));
  }
  if (options_.masks) {
    MTPD_CHECK_ARG(!options_.mask_layers.empty(), "cascade_roi_heads: mask_layers needs at least one layer");
    mask_head = register_module("mask_head", torch::nn::ModuleList());
    mask_predictor = register_module("mask_predictor", torch::nn::ModuleList());
    for (int64_t i = 0; i < num_mask_heads(); ++i) {
      mask_head->push_back(MaskRCNNHeads(in_channels, options_.mask_layers, options_.mask_dilation));
      mask_predictor->push_back(
          MaskRCNNPredictor(options_.mask_layers.back(), options_.mask_dim_reduced, options_.num_classes - 1));
    }
  }
}

int64_t CascadeRoIHeadsImpl::num_mask_heads() const {
  return options_.masks ? (options_.mask_per_stage ? options_.num_stages() : 1) : 0;
}

at::Tensor CascadeRoIHeadsImpl::regress(int64_t s, const at::Tensor& deltas, const at::Tensor& boxes,
                                        const at::Tensor& labels, std::array<int64_t, 2> size) const {
  const auto& w = options_.stage_bbox_reg_weights[static_cast<size_t>(s)];
  const double clip = std::log(1000.0 / 16);
  const int64_t k = deltas.size(0);
  at::Tensor d = deltas.reshape({k, -1, 4});  // (K, 1 or C, 4)
  if (labels.defined() && d.size(1) > 1) d = d.index({at::arange(k, labels.options()), labels}).unsqueeze(1);
  // mmdet's delta2bbox clamps dw, dh to [-log(1000/16), log(1000/16)]; BoxCoder clamps the top.
  d = at::stack({d.select(2, 0), d.select(2, 1), d.select(2, 2).clamp_min(-clip * w[2]),
                 d.select(2, 3).clamp_min(-clip * w[3])},
                2);
  const int64_t c = d.size(1);
  at::Tensor out = box_coders_[static_cast<size_t>(s)].decode_single(d.reshape({k, c * 4}), boxes);
  out = ops::clip_boxes_to_image(out.reshape({-1, 4}), size[0], size[1]).reshape({k, c, 4});
  return c == 1 ? out.select(1, 0) : out;
}

std::pair<at::Tensor, at::Tensor> CascadeRoIHeadsImpl::box_forward(
    int64_t s, const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes,
    const std::vector<std::array<int64_t, 2>>& image_sizes) {
  at::Tensor x = box_head[s]->as<TwoMLPHeadImpl>()->forward(box_pool_(features, boxes, image_sizes));
  auto [logits, deltas] = box_predictor[s]->as<FastRCNNPredictorImpl>()->forward(x);
  return {logits.to(at::kFloat), deltas.to(at::kFloat)};
}

at::Tensor CascadeRoIHeadsImpl::mask_logits(int64_t m, const std::vector<at::Tensor>& features,
                                            const std::vector<at::Tensor>& boxes,
                                            const std::vector<std::array<int64_t, 2>>& image_sizes) {
  at::Tensor x = mask_pool_(features, boxes, image_sizes);  // (K, C, 14, 14)
  x = mask_head[m]->as<MaskRCNNHeadsImpl>()->forward(x);
  return mask_predictor[m]->as<MaskRCNNPredictorImpl>()->forward(x).to(at::kFloat);  // (K, classes, 28, 28)
}

std::map<std::string, at::Tensor> CascadeRoIHeadsImpl::losses(const std::vector<at::Tensor>& features,
                                                              const std::vector<at::Tensor>& proposals_in,
                                                              const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                              const std::vector<Target>& targets) {
  const size_t n = proposals_in.size();
  MTPD_CHECK_SHAPE(targets.size() == n, "cascade_roi_heads: ", targets.size(), " targets for ", n, " images");
  // Inferring poolers (roi_scales "infer"): the mask pooler takes its scales from the first batch
  // as the box pooler (run in every forward) does, as RoIHeads's, even when it pools no mask.
  if (options_.masks) mask_pool_.scales(features, image_sizes);
  std::vector<at::Tensor> proposals;
  for (const auto& p : proposals_in) proposals.push_back(p.detach());
  std::map<std::string, at::Tensor> out;
  const int64_t stages = options_.num_stages();
  for (int64_t s = 0; s < stages; ++s) {
    const std::string pre = "s" + std::to_string(s) + ".";
    const double lw = options_.stage_loss_weights[static_cast<size_t>(s)];
    // add_gt_as_proposals, this stage's IoU, one sampler draw over the batch, this stage's coder
    const SampledProposals sampled = sample_proposals(proposals, targets, matchers_[static_cast<size_t>(s)], sampler_,
                                                      box_coders_[static_cast<size_t>(s)]);
    const auto& rois = sampled.rois;
    const auto& labels = sampled.labels;
    const auto& matched_idxs = sampled.matched_idxs;
    const auto& is_gt = sampled.is_gt;
    const auto& reg_targets = sampled.regression_targets;
    auto [class_logits, box_regression] = box_forward(s, features, rois, image_sizes);
    at::Tensor lab = at::cat(labels), reg = at::cat(reg_targets);
    out[pre + "loss_classifier"] = at::cross_entropy_loss(class_logits, lab) * lw;
    at::Tensor pos = (lab > 0).nonzero().select(1, 0);
    const int64_t k = class_logits.size(0), c = class_logits.size(1);
    at::Tensor pos_deltas = options_.class_agnostic
                                ? box_regression.index_select(0, pos)
                                : box_regression.reshape({k * c, 4}).index_select(0, pos * c + lab.index_select(0, pos));
    out[pre + "loss_box_reg"] = at::smooth_l1_loss(pos_deltas, reg.index_select(0, pos), at::Reduction::Sum,
                                                   options_.box_loss_beta) /
                                static_cast<double>(std::max<int64_t>(lab.numel(), 1)) * lw;

    const bool mask_here = options_.masks && (options_.mask_per_stage || s == stages - 1);
    if (mask_here) {
      const int64_t m = options_.mask_per_stage ? s : 0;
      std::vector<at::Tensor> mask_props, mask_targets, mask_labels;
      {
        at::NoGradGuard no_grad;
        for (size_t i = 0; i < n; ++i) {
          MTPD_CHECK_ARG(targets[i].masks.defined(), "cascade_mask_rcnn: losses need targets[", i, "].masks");
          at::Tensor p = (labels[i] > 0).nonzero().select(1, 0);
          at::Tensor props = rois[i].index_select(0, p);
          at::Tensor idx = matched_idxs[i].index_select(0, p);
          mask_props.push_back(props);
          mask_labels.push_back(targets[i].labels.to(props.device(), at::kLong).index_select(0, idx));
          // mmdet's mask_target: the positives clipped to the mask, the gt mask RoIAligned onto each
          // (28 x 28, adaptive grid)
          const auto& gmask = targets[i].masks;
          at::Tensor clipped = ops::clip_boxes_to_image(props, gmask.size(1), gmask.size(2));
          at::Tensor boxes = at::cat({idx.unsqueeze(1).to(props.scalar_type()), clipped}, 1);
          at::Tensor gm = targets[i].masks.to(props.device()).unsqueeze(1).to(props.scalar_type());
          const int64_t sz = 28;
          at::Tensor t = idx.numel() == 0 ? at::zeros({0, sz, sz}, props.options())
                                          : ops::roi_align(gm, boxes, sz, sz, 1.0, 0, options_.aligned).select(1, 0);
          if (options_.binarize_mask_targets) t = (t >= 0.5).to(props.scalar_type());
          mask_targets.push_back(t);
        }
      }
      at::Tensor mt = at::cat(mask_targets), ml = at::cat(mask_labels);
      if (mt.numel() == 0) {
        at::Tensor z = at::zeros({}, class_logits.options());
        for (const auto& p : mask_predictor[m]->parameters()) z = z + p.sum() * 0.0;
        out[pre + "loss_mask"] = z;
      } else {
        at::Tensor logits = mask_logits(m, features, mask_props, image_sizes);             // (K, C-1, 28, 28)
        at::Tensor picked = logits.index({at::arange(ml.size(0), ml.options()), ml - 1});  // (K, 28, 28)
        out[pre + "loss_mask"] = at::binary_cross_entropy_with_logits(picked, mt) * lw;
      }
    }

    if (s + 1 < stages) {
      // refine_bboxes: background rows regress by their best class (class-specific heads)
      at::NoGradGuard no_grad;
      at::Tensor best = class_logits.slice(1, 1).argmax(1) + 1;
      at::Tensor roi_labels = at::where(lab == 0, best, lab.clamp_min(0));
      const auto counts = row_counts(rois);
      auto deltas = split_rows(box_regression.detach(), counts);
      auto labs = split_rows(roi_labels, counts);
      for (size_t i = 0; i < n; ++i) {
        at::Tensor refined = regress(s, deltas[i], rois[i], labs[i], image_sizes[i]);
        proposals[i] = refined.index_select(0, is_gt[i].logical_not().nonzero().select(1, 0));
      }
    }
  }
  return out;
}

std::vector<Detection> CascadeRoIHeadsImpl::detect(const std::vector<at::Tensor>& features,
                                                   const std::vector<at::Tensor>& proposals,
                                                   const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                   std::vector<CascadeStage>* stages_out) {
  at::NoGradGuard no_grad;
  if (options_.masks) mask_pool_.scales(features, image_sizes);  // as in losses()
  const int64_t stages = options_.num_stages();
  const auto counts = row_counts(proposals);
  std::vector<at::Tensor> rois = proposals;
  at::Tensor logits_sum, last_deltas;
  for (int64_t s = 0; s < stages; ++s) {
    auto [logits, deltas] = box_forward(s, features, rois, image_sizes);
    if (stages_out) stages_out->push_back({at::cat(rois), logits, deltas});
    logits_sum = s == 0 ? logits : logits_sum + logits;
    if (s + 1 < stages) {
      at::Tensor best = logits.slice(1, 1).argmax(1) + 1;
      auto ds = split_rows(deltas, counts);
      auto ls = split_rows(best, counts);
      for (size_t i = 0; i < rois.size(); ++i) rois[i] = regress(s, ds[i], rois[i], ls[i], image_sizes[i]);
    } else {
      last_deltas = deltas;
    }
  }
  // mmdet: the class logits averaged over the stages, then softmax
  at::Tensor scores_all = at::softmax(logits_sum / static_cast<double>(stages), -1);
  const int64_t c = scores_all.size(1);
  auto ds = split_rows(last_deltas, counts);
  auto ss = split_rows(scores_all, counts);
  std::vector<Detection> dets;
  for (size_t i = 0; i < rois.size(); ++i) {
    const int64_t m = rois[i].size(0);
    at::Tensor boxes = regress(stages - 1, ds[i], rois[i], at::Tensor(), image_sizes[i]);
    boxes = boxes.dim() == 2 ? boxes.unsqueeze(1).expand({m, c - 1, 4}) : boxes.slice(1, 1);
    at::Tensor scores = ss[i].slice(1, 1);
    at::Tensor labels = at::arange(1, c, scores.options().dtype(at::kLong)).view({1, -1}).expand_as(scores);
    boxes = boxes.reshape({-1, 4});
    scores = scores.reshape({-1});
    labels = labels.reshape({-1});
    at::Tensor keep = (scores > options_.score_thresh).nonzero().select(1, 0);
    boxes = boxes.index_select(0, keep);
    scores = scores.index_select(0, keep);
    labels = labels.index_select(0, keep);
    keep = ops::batched_nms(boxes, scores, labels, options_.nms_thresh).slice(0, 0, options_.detections_per_img);
    dets.push_back({boxes.index_select(0, keep), scores.index_select(0, keep), labels.index_select(0, keep), {}});
  }
  if (!options_.masks) return dets;
  std::vector<at::Tensor> boxes, labels;
  int64_t total = 0;
  for (const auto& d : dets) {
    boxes.push_back(d.boxes);
    labels.push_back(d.labels);
    total += d.boxes.size(0);
  }
  if (total == 0) {
    for (auto& d : dets) d.masks = at::zeros({0, 1, 28, 28}, d.boxes.options());
    return dets;
  }
  at::Tensor lab = at::cat(labels) - 1;
  at::Tensor prob;
  for (int64_t h = 0; h < num_mask_heads(); ++h) {
    at::Tensor p = mask_logits(h, features, boxes, image_sizes).sigmoid().index({at::arange(total, lab.options()), lab});
    prob = h == 0 ? p : prob + p;
  }
  prob = (prob / static_cast<double>(num_mask_heads())).unsqueeze(1);  // (D, 1, 28, 28)
  auto ps = split_rows(prob, row_counts(boxes));
  for (size_t i = 0; i < dets.size(); ++i) dets[i].masks = ps[i];
  return dets;
}

namespace {
const std::vector<std::string> kCascadeKeys = {"stage_iou_thresholds", "stage_loss_weights", "stage_bbox_reg_weights",
                                               "class_agnostic",       "box_loss_beta",      "roi_sampling_ratio",
                                               "mask_per_stage",       "binarize_mask_targets", "mask_paste"};
}  // namespace

const std::vector<std::string>& cascade_option_keys() { return kCascadeKeys; }

void read_cascade_options(const Json& o, const std::string& what, CascadeRoIHeadsOptions& h) {
  h.stage_iou_thresholds = opt_numbers(o, "stage_iou_thresholds", h.stage_iou_thresholds);
  const size_t s = h.stage_iou_thresholds.size();
  MTPD_CHECK_ARG(s >= 1, what, ": stage_iou_thresholds needs at least one stage");
  for (double t : h.stage_iou_thresholds)
    MTPD_CHECK_ARG(t > 0 && t < 1, what, ": stage_iou_thresholds must be in (0, 1), got ", t);
  if (o.contains("stage_iou_thresholds") && s != 3 && !o.contains("stage_loss_weights"))
    MTPD_CHECK_ARG(false, what, ": ", s, " stage_iou_thresholds need stage_loss_weights (", s, " numbers)");
  h.stage_loss_weights = opt_numbers(o, "stage_loss_weights", h.stage_loss_weights);
  MTPD_CHECK_ARG(h.stage_loss_weights.size() == s, what, ": stage_loss_weights needs ", s, " numbers (one per stage), got ",
                 h.stage_loss_weights.size());
  if (o.contains("stage_bbox_reg_weights")) {
    const Json& w = o.at("stage_bbox_reg_weights");
    MTPD_CHECK_ARG(w.is_array() && w.size() == s, what, ": stage_bbox_reg_weights needs ", s,
                   " lists of 4 numbers (one per stage)");
    h.stage_bbox_reg_weights.clear();
    for (size_t i = 0; i < s; ++i) {
      MTPD_CHECK_ARG(w[i].is_array() && w[i].size() == 4, what, ": stage_bbox_reg_weights[", i,
                     "] needs 4 numbers");
      std::array<double, 4> a{};
      for (size_t j = 0; j < 4; ++j) {
        MTPD_CHECK_ARG(w[i][j].is_number() && w[i][j].get<double>() > 0, what, ": stage_bbox_reg_weights[", i, "][",
                       j, "] must be a positive number");
        a[j] = w[i][j].get<double>();
      }
      h.stage_bbox_reg_weights.push_back(a);
    }
  } else {
    MTPD_CHECK_ARG(h.stage_bbox_reg_weights.size() == s, what, ": ", s,
                   " stages need stage_bbox_reg_weights (one list of 4 numbers per stage)");
  }
  h.class_agnostic = opt_bool(o, "class_agnostic", h.class_agnostic);
  h.box_loss_beta = opt_number(o, "box_loss_beta", h.box_loss_beta);
  MTPD_CHECK_ARG(h.box_loss_beta >= 0, what, ": box_loss_beta must be 0 (L1) or positive");
  h.sampling_ratio = opt_int(o, "roi_sampling_ratio", h.sampling_ratio);
  MTPD_CHECK_ARG(h.sampling_ratio >= 0, what, ": roi_sampling_ratio must be 0 (adaptive) or positive");
  h.mask_per_stage = opt_bool(o, "mask_per_stage", h.mask_per_stage);
  h.binarize_mask_targets = opt_bool(o, "binarize_mask_targets", h.binarize_mask_targets);
  h.mask_paste = opt_string(o, "mask_paste", h.mask_paste);
  MTPD_CHECK_ARG(h.mask_paste == "torchvision" || h.mask_paste == "mmdet", what,
                 ": mask_paste must be \"torchvision\" or \"mmdet\", got \"", h.mask_paste, "\"");
}

void write_cascade_options(const CascadeRoIHeadsOptions& h, Json& o) {
  o["stage_iou_thresholds"] = h.stage_iou_thresholds;
  o["stage_loss_weights"] = h.stage_loss_weights;
  Json w = Json::array();
  for (const auto& a : h.stage_bbox_reg_weights) w.push_back(a);
  o["stage_bbox_reg_weights"] = w;
  o["class_agnostic"] = h.class_agnostic;
  o["box_loss_beta"] = h.box_loss_beta;
  o["roi_sampling_ratio"] = h.sampling_ratio;
  if (h.masks) {
    o["mask_per_stage"] = h.mask_per_stage;
    o["binarize_mask_targets"] = h.binarize_mask_targets;
    if (h.mask_paste != "torchvision") o["mask_paste"] = h.mask_paste;  // absent by default (configs unchanged)
  }
}

}  // namespace mtpd
