#include "models/retinanet.h"

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>

#include "core/errors.h"
#include "ops/nms.h"

namespace mtpd {

namespace {

const std::vector<std::string> kRetinaNetOptions = {
    "backbone", "num_classes", "min_size", "max_size", "image_mean", "image_std", "size_divisible", "width_mult",
    "trainable_layers", "trainable_backbone_layers", "norm_layer", "returned_layers", "fpn_channels", "extra_blocks",
    "groups", "width_per_group", "layers", "stochastic_depth_prob", "anchor_sizes", "aspect_ratios", "score_thresh",
    "nms_thresh", "detections_per_img", "fg_iou_thresh", "bg_iou_thresh", "topk_candidates", "prior_probability",
    "focal_alpha", "focal_gamma", "box_loss", "head_norm", "anchor_style", "box_coder", "resize_style", "swin_style"};

}  // namespace

RetinaNetOptions RetinaNetOptions::from_json(const Json& o) {
  check_known_options(o, "retinanet", kRetinaNetOptions);
  RetinaNetOptions r;
  r.backbone = backbone_options_from_json(o, "retinanet", r.backbone);
  auto& b = r.backbone;
  b.extra_blocks = opt_string(o, "extra_blocks", b.extra_blocks);
  b.swin_style = opt_string(o, "swin_style", b.swin_style);
  MTPD_CHECK_ARG(b.swin_style == "torchvision" || b.swin_style == "mmdet",
                 "retinanet: swin_style must be \"torchvision\" or \"mmdet\", got \"", b.swin_style, "\"");
  r.num_classes = opt_int(o, "num_classes", r.num_classes);
  MTPD_CHECK_ARG(r.num_classes > 0, "retinanet: num_classes must be positive, got ", r.num_classes);
  r.transform = transform_options_from_json(o, "retinanet", r.transform);
  r.transform.resize_style = opt_string(o, "resize_style", r.transform.resize_style);
  MTPD_CHECK_ARG(r.transform.resize_style == "torchvision" || r.transform.resize_style == "mmdet",
                 "retinanet: resize_style must be \"torchvision\" or \"mmdet\", got \"", r.transform.resize_style, "\"");
  r.anchor_sizes = opt_numbers(o, "anchor_sizes", r.anchor_sizes);
  r.aspect_ratios = opt_numbers(o, "aspect_ratios", r.aspect_ratios);
  for (double s : r.anchor_sizes) MTPD_CHECK_ARG(s > 0, "retinanet: anchor_sizes must be positive");
  for (double a : r.aspect_ratios) MTPD_CHECK_ARG(a > 0, "retinanet: aspect_ratios must be positive");
  r.anchor_style = opt_string(o, "anchor_style", r.anchor_style);
  MTPD_CHECK_ARG(r.anchor_style == "torchvision" || r.anchor_style == "mmdet",
                 "retinanet: anchor_style must be \"torchvision\" or \"mmdet\", got \"", r.anchor_style, "\"");
  r.box_coder = opt_string(o, "box_coder", r.box_coder);
  MTPD_CHECK_ARG(r.box_coder == "torchvision" || r.box_coder == "mmdet",
                 "retinanet: box_coder must be \"torchvision\" or \"mmdet\", got \"", r.box_coder, "\"");
  r.score_thresh = opt_number(o, "score_thresh", r.score_thresh);
  r.nms_thresh = opt_number(o, "nms_thresh", r.nms_thresh);
  r.detections_per_img = opt_int(o, "detections_per_img", r.detections_per_img);
  r.fg_iou_thresh = opt_number(o, "fg_iou_thresh", r.fg_iou_thresh);
  r.bg_iou_thresh = opt_number(o, "bg_iou_thresh", r.bg_iou_thresh);
  r.topk_candidates = opt_int(o, "topk_candidates", r.topk_candidates);
  MTPD_CHECK_ARG(r.detections_per_img > 0 && r.topk_candidates > 0,
                 "retinanet: detections_per_img and topk_candidates must be positive");
  r.prior_probability = opt_number(o, "prior_probability", r.prior_probability);
  r.focal_alpha = opt_number(o, "focal_alpha", r.focal_alpha);
  r.focal_gamma = opt_number(o, "focal_gamma", r.focal_gamma);
  r.box_loss = opt_string(o, "box_loss", r.box_loss);
  r.head_norm = opt_string(o, "head_norm", r.head_norm);
  return r;
}

Json RetinaNetOptions::to_json() const {
  Json o;
  o["backbone"] = backbone.name;
  o["width_mult"] = backbone.width_mult;
  o["trainable_layers"] = backbone.trainable_layers;
  o["norm_layer"] = backbone.norm_layer;
  o["returned_layers"] = backbone.returned_layers;
  o["fpn_channels"] = backbone.fpn_channels;
  o["extra_blocks"] = backbone.extra_blocks;
  if (backbone.groups > 0) o["groups"] = backbone.groups;
  if (backbone.width_per_group > 0) o["width_per_group"] = backbone.width_per_group;
  if (!backbone.layers.empty()) o["layers"] = backbone.layers;
  if (backbone.stochastic_depth_prob >= 0) o["stochastic_depth_prob"] = backbone.stochastic_depth_prob;
  if (backbone.swin_style != "torchvision") o["swin_style"] = backbone.swin_style;
  o["num_classes"] = num_classes;
  o["min_size"] = transform.min_size;
  o["max_size"] = transform.max_size;
  o["image_mean"] = transform.image_mean;
  o["image_std"] = transform.image_std;
  o["size_divisible"] = transform.size_divisible;
  if (transform.resize_style != "torchvision") o["resize_style"] = transform.resize_style;
  o["anchor_sizes"] = anchor_sizes;
  o["aspect_ratios"] = aspect_ratios;
  o["anchor_style"] = anchor_style;
  if (box_coder != "torchvision") o["box_coder"] = box_coder;
  o["score_thresh"] = score_thresh;
  o["nms_thresh"] = nms_thresh;
  o["detections_per_img"] = detections_per_img;
  o["fg_iou_thresh"] = fg_iou_thresh;
  o["bg_iou_thresh"] = bg_iou_thresh;
  o["topk_candidates"] = topk_candidates;
  o["prior_probability"] = prior_probability;
  o["focal_alpha"] = focal_alpha;
  o["focal_gamma"] = focal_gamma;
  o["box_loss"] = box_loss;
  o["head_norm"] = head_norm;
  return o;
}

namespace {
AnchorGenerator make_anchor_generator(const RetinaNetOptions& o, size_t levels) {
  MTPD_CHECK_ARG(o.anchor_sizes.size() == levels, "retinanet: anchor_sizes has ", o.anchor_sizes.size(),
                 " entries but the FPN has ", levels, " levels");
  std::vector<std::vector<double>> sizes, ratios;
  const bool mmdet = o.anchor_style == "mmdet";
  for (double x : o.anchor_sizes) {
    if (mmdet) {
      // stride * octave_base_scale * 2 ** (i / scales_per_octave), i = 0..2
      sizes.push_back({x, x * std::pow(2.0, 1.0 / 3), x * std::pow(2.0, 2.0 / 3)});
    } else {
      // tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in ...)
      sizes.push_back({x, std::trunc(x * std::pow(2.0, 1.0 / 3)), std::trunc(x * std::pow(2.0, 2.0 / 3))});
    }
    ratios.push_back(o.aspect_ratios);
  }
  return AnchorGenerator(sizes, ratios, /*round=*/!mmdet);
}
}  // namespace

RetinaNetImpl::RetinaNetImpl(RetinaNetOptions o)
    : options_(std::move(o)),
      transform_(options_.transform),
      anchor_generator_(make_anchor_generator(
          options_, options_.backbone.returned_layers.size() + (options_.backbone.extra_blocks == "none" ? 0 : 2))),
      matcher_(options_.fg_iou_thresh, options_.bg_iou_thresh, /*allow_low_quality_matches=*/true),
      box_coder_({1.0, 1.0, 1.0, 1.0}, std::log(1000.0 / 16), options_.box_coder == "mmdet") {
  backbone = register_module("backbone", BackboneWithFPN(options_.backbone));
  const int64_t a = anchor_generator_.num_anchors_per_location()[0];
  head = register_module("head", RetinaNetHead(backbone->out_channels(), a, options_.num_classes,
                                               options_.prior_probability, options_.head_norm, options_.box_loss));
}

std::vector<std::string> RetinaNetImpl::feature_names() const {
  std::vector<std::string> out;
  for (auto l : backbone->levels()) out.push_back("p" + std::to_string(l));
  return out;
}

std::vector<int64_t> RetinaNetImpl::feature_strides() const {
  std::vector<int64_t> out;
  for (auto l : backbone->levels()) out.push_back(int64_t{1} << l);
  return out;
}

std::vector<ImageSize> RetinaNetImpl::eval_image_sizes(const std::vector<ImageSize>& original_sizes) const {
  std::vector<ImageSize> out;
  out.reserve(original_sizes.size());
  for (size_t i = 0; i < original_sizes.size(); ++i) {
    const auto [h, w] = original_sizes[i];
    MTPD_CHECK_SHAPE(h > 0 && w > 0, "retinanet: image ", i, " size must be positive, got (", h, ", ", w, ")");
    // prepare() in eval mode: the last min_size (GeneralizedRCNNTransform).
    out.push_back(transform_.resized_size(h, w, static_cast<double>(options_.transform.min_size.back())));
  }
  return out;
}

ImageBatch RetinaNetImpl::prepare(const std::vector<at::Tensor>& images, const std::vector<Target>* targets) {
  check_images_and_targets(images, targets, "retinanet");
  const c10::Device dev = device();
  std::vector<at::Tensor> on_device;
  on_device.reserve(images.size());
  for (const auto& im : images) on_device.push_back(im.to(dev, at::kFloat));
  return transform_(on_device, targets, is_training());
}

std::map<std::string, at::Tensor> RetinaNetImpl::compute_loss(const std::vector<Target>& targets,
                                                              const HeadOutputs& out, const at::Tensor& anchors,
                                                              bool twice_differentiable) {
  std::vector<at::Tensor> matched, labels, boxes;
  for (const auto& t : targets) {
    labels.push_back(t.labels);
    boxes.push_back(t.boxes);
    if (t.boxes.size(0) == 0) {
      matched.push_back(at::full({anchors.size(0)}, -1, anchors.options().dtype(at::kLong)));
    } else {
      matched.push_back(matcher_(ops::box_iou(t.boxes.detach(), anchors)));
    }
  }
  std::map<std::string, at::Tensor> losses;
  losses["classification"] = head->classification_head->compute_loss(labels, out.cls_logits, matched,
                                                                     options_.focal_alpha, options_.focal_gamma,
                                                                     twice_differentiable);
  losses["bbox_regression"] = head->regression_head->compute_loss(boxes, out.bbox_regression, anchors, matched);
  return losses;
}

std::vector<Detection> RetinaNetImpl::postprocess_detections(const HeadOutputs& out, const at::Tensor& anchors,
                                                             const std::vector<ImageSize>& image_sizes,
                                                             const std::vector<ImageSize>* original_sizes) {
  std::vector<Detection> dets;
  const int64_t k = options_.num_classes;
  for (size_t i = 0; i < image_sizes.size(); ++i) {
    at::Tensor logits_all = out.cls_logits[static_cast<int64_t>(i)];
    at::Tensor reg_all = out.bbox_regression[static_cast<int64_t>(i)];
    std::vector<at::Tensor> all_boxes, all_scores, all_labels;
    int64_t start = 0;
    for (int64_t n : out.anchors_per_level) {
      at::Tensor logits = logits_all.slice(0, start, start + n);
      at::Tensor reg = reg_all.slice(0, start, start + n);
      at::Tensor anc = anchors.slice(0, start, start + n);
      start += n;
      // remove low scoring boxes, keep the top-k of the rest
      at::Tensor scores = at::sigmoid(logits).flatten();
      at::Tensor keep = scores > options_.score_thresh;
      scores = scores.masked_select(keep);
      at::Tensor topk_idxs = keep.nonzero().squeeze(1);
      const int64_t num_topk = std::min<int64_t>(options_.topk_candidates, topk_idxs.size(0));
      auto tk = scores.topk(num_topk);
      scores = std::get<0>(tk);
      topk_idxs = topk_idxs.index_select(0, std::get<1>(tk));
      at::Tensor anchor_idxs = at::div(topk_idxs, k, "floor");
      at::Tensor labels = topk_idxs.remainder(k);
      at::Tensor boxes = box_coder_.decode_single(reg.index_select(0, anchor_idxs), anc.index_select(0, anchor_idxs));
      boxes = ops::clip_boxes_to_image(boxes, image_sizes[i][0], image_sizes[i][1]);
      all_boxes.push_back(boxes);
      all_scores.push_back(scores);
      all_labels.push_back(labels);
    }
    at::Tensor boxes = at::cat(all_boxes), scores = at::cat(all_scores), labels = at::cat(all_labels);
    // mmdet (_bbox_post_process): rescale to the original image, then batched_nms there
    if (original_sizes) {
      boxes = transform_.unresize_boxes(boxes, image_sizes[i], (*original_sizes)[i]);
      // test_cfg min_bbox_size 0: drop boxes that clipping left with no width or height (w > 0 and h > 0)
      at::Tensor valid = ((boxes.select(1, 2) - boxes.select(1, 0)) > 0) & ((boxes.select(1, 3) - boxes.select(1, 1)) > 0);
      if (!valid.all().item<bool>()) {
        at::Tensor idx = valid.nonzero().squeeze(1);
        boxes = boxes.index_select(0, idx);
        scores = scores.index_select(0, idx);
        labels = labels.index_select(0, idx);
      }
    }
    at::Tensor keep = ops::batched_nms(boxes, scores, labels, options_.nms_thresh);
    keep = keep.slice(0, 0, options_.detections_per_img);
    dets.push_back({boxes.index_select(0, keep), scores.index_select(0, keep), labels.index_select(0, keep), {}});
  }
  return dets;
}

DetectorOutput RetinaNetImpl::forward_batch(const ImageBatch& batch, const RunOptions& what) {
  MTPD_CHECK_ARG(!what.losses || batch.targets.size() == batch.image_sizes.size(),
                 "retinanet: losses need targets for every image");
  DetectorOutput out;
  out.image_sizes = batch.image_sizes;
  out.original_sizes = batch.original_sizes;
  out.batch_size = {batch.tensors.size(2), batch.tensors.size(3)};
  out.targets = batch.targets;
  std::vector<at::Tensor> features = backbone->forward(batch.tensors);
  if (what.features) {
    const auto names = feature_names();
    for (size_t i = 0; i < features.size(); ++i) out.features[names[i]] = features[i];
  }
  if (!what.losses && !what.detections) return out;
  HeadOutputs ho = head->forward(features);
  std::vector<std::array<int64_t, 2>> grids;
  for (const auto& f : features) grids.push_back({f.size(2), f.size(3)});
  // mmdetection's AnchorGenerator tiles every level with its own stride (8, 16, ..., 128)
  const std::vector<int64_t> strides = options_.anchor_style == "mmdet" ? feature_strides() : std::vector<int64_t>{};
  at::Tensor anchors = anchor_generator_.anchors(grids, out.batch_size, at::kFloat, batch.tensors.device(), strides);
  if (what.losses) {
    // Losses in float32 even when the forward ran under autocast (half-precision head outputs).
    HeadOutputs f32{ho.cls_logits.to(at::kFloat), ho.bbox_regression.to(at::kFloat), ho.anchors_per_level};
    out.losses = compute_loss(batch.targets, f32, anchors, what.twice_differentiable);
  }
  if (what.detections) {
    torch::NoGradGuard no_grad;
    HeadOutputs detached{ho.cls_logits.detach().to(at::kFloat), ho.bbox_regression.detach().to(at::kFloat),
                         ho.anchors_per_level};
    const bool mmdet = options_.transform.resize_style == "mmdet";
    out.detections = postprocess_detections(detached, anchors, batch.image_sizes, mmdet ? &batch.original_sizes : nullptr);
    if (!mmdet) transform_.postprocess(out.detections, batch.image_sizes, batch.original_sizes);
  }
  return out;
}

namespace {
BuiltModule make_retinanet(const Json& o) {
  auto model = std::make_shared<RetinaNetImpl>(RetinaNetOptions::from_json(o));
  return {model, {}};
}
}  // namespace

MTPD_REGISTER_MODULE("retinanet",
                     "RetinaNet with a ResNet/ResNeXt/Swin FPN backbone (torchvision names; options: backbone, "
                     "num_classes, min_size, max_size, width_mult, trainable_layers, score_thresh, ...)",
                     make_retinanet);

}  // namespace mtpd
