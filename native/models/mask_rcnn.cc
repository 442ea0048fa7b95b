#include "models/mask_rcnn.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "models/width.h"
#include "models/two_stage.h"

namespace mtpd {

namespace {


const std::vector<std::string> kMaskRcnnOptions = {
    "backbone", "num_classes", "min_size", "max_size", "image_mean", "image_std", "size_divisible", "width_mult",
    "trainable_layers", "trainable_backbone_layers", "norm_layer", "returned_layers", "fpn_channels", "groups",
    "width_per_group", "layers", "stochastic_depth_prob", "anchor_sizes", "aspect_ratios", "rpn_conv_depth",
    "rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_train", "rpn_post_nms_top_n_test",
    "rpn_nms_thresh", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh", "rpn_batch_size_per_image", "rpn_positive_fraction",
    "rpn_score_thresh", "box_score_thresh", "box_nms_thresh", "box_detections_per_img", "box_fg_iou_thresh",
    "box_bg_iou_thresh", "box_batch_size_per_image", "box_positive_fraction", "bbox_reg_weights",
    "representation_size", "mask_channels", "mask_layers", "mask_dilation", "roi_aligned", "fpn_norm", "box_head",
    "box_conv_layers", "head_norm", "anchor_style", "roi_scales"};

}  // namespace

MaskRCNNOptions MaskRCNNOptions::from_json(const Json& o, bool masks) {
  const std::string what = masks ? "mask_rcnn" : "faster_rcnn";
  check_known_options(o, what, kMaskRcnnOptions);
  MaskRCNNOptions r;
  r.masks = masks;
  auto& b = r.backbone;
  b.returned_layers = {1, 2, 3, 4};
  b.extra_blocks = "pool";
  b = backbone_options_from_json(o, what, b);
  b.fpn_norm = opt_string(o, "fpn_norm", b.fpn_norm);
  MTPD_CHECK_ARG(b.fpn_norm == "none" || b.fpn_norm == "bn", what, ": fpn_norm must be \"none\" or \"bn\", got \"",
                 b.fpn_norm, "\"");
  r.num_classes = opt_int(o, "num_classes", r.num_classes);
  MTPD_CHECK_ARG(r.num_classes > 0, what, ": num_classes must be positive, got ", r.num_classes);
  r.transform = transform_options_from_json(o, what, r.transform);
  auto& p = r.rpn;
  p.anchor_sizes = opt_numbers(o, "anchor_sizes", p.anchor_sizes);
  p.aspect_ratios = opt_numbers(o, "aspect_ratios", p.aspect_ratios);
  for (double s : p.anchor_sizes) MTPD_CHECK_ARG(s > 0, what, ": anchor_sizes must be positive");
  for (double a : p.aspect_ratios) MTPD_CHECK_ARG(a > 0, what, ": aspect_ratios must be positive");
  MTPD_CHECK_ARG(p.anchor_sizes.size() == b.returned_layers.size() + 1, what, ": anchor_sizes needs ",
                 b.returned_layers.size() + 1, " entries (one per FPN level and the pool level), got ",
                 p.anchor_sizes.size());
  p.anchor_style = opt_string(o, "anchor_style", p.anchor_style);
  MTPD_CHECK_ARG(p.anchor_style == "torchvision" || p.anchor_style == "mmdet", what,
                 ": anchor_style must be \"torchvision\" or \"mmdet\", got \"", p.anchor_style, "\"");
  if (p.anchor_style == "mmdet") {
    // mmdetection's RPN strides: the FPN levels' (layer l -> 2^(l+1)) and the pool level's
    for (int64_t l : b.returned_layers) p.anchor_strides.push_back(int64_t{1} << (l + 1));
    p.anchor_strides.push_back(int64_t{1} << (b.returned_layers.back() + 2));
  }
  p.conv_depth = opt_int(o, "rpn_conv_depth", p.conv_depth);
  p.pre_nms_top_n_train = opt_int(o, "rpn_pre_nms_top_n_train", p.pre_nms_top_n_train);
  p.pre_nms_top_n_test = opt_int(o, "rpn_pre_nms_top_n_test", p.pre_nms_top_n_test);
  p.post_nms_top_n_train = opt_int(o, "rpn_post_nms_top_n_train", p.post_nms_top_n_train);
  p.post_nms_top_n_test = opt_int(o, "rpn_post_nms_top_n_test", p.post_nms_top_n_test);
  MTPD_CHECK_ARG(p.pre_nms_top_n_train > 0 && p.pre_nms_top_n_test > 0 && p.post_nms_top_n_train > 0 &&
                     p.post_nms_top_n_test > 0,
                 what, ": rpn pre/post NMS top-n must be positive");
  p.nms_thresh = opt_number(o, "rpn_nms_thresh", p.nms_thresh);
  p.fg_iou_thresh = opt_number(o, "rpn_fg_iou_thresh", p.fg_iou_thresh);
  p.bg_iou_thresh = opt_number(o, "rpn_bg_iou_thresh", p.bg_iou_thresh);
  p.batch_size_per_image = opt_int(o, "rpn_batch_size_per_image", p.batch_size_per_image);
  p.positive_fraction = opt_number(o, "rpn_positive_fraction", p.positive_fraction);
  p.score_thresh = opt_number(o, "rpn_score_thresh", p.score_thresh);
  auto& h = r.roi;
  h.masks = masks;
  h.score_thresh = opt_number(o, "box_score_thresh", h.score_thresh);
  h.nms_thresh = opt_number(o, "box_nms_thresh", h.nms_thresh);
  h.detections_per_img = opt_int(o, "box_detections_per_img", h.detections_per_img);
  MTPD_CHECK_ARG(h.detections_per_img > 0, what, ": box_detections_per_img must be positive");
  h.fg_iou_thresh = opt_number(o, "box_fg_iou_thresh", h.fg_iou_thresh);
  h.bg_iou_thresh = opt_number(o, "box_bg_iou_thresh", h.bg_iou_thresh);
  h.batch_size_per_image = opt_int(o, "box_batch_size_per_image", h.batch_size_per_image);
  h.positive_fraction = opt_number(o, "box_positive_fraction", h.positive_fraction);
  auto w = opt_numbers(o, "bbox_reg_weights", {10.0, 10.0, 5.0, 5.0});
  MTPD_CHECK_ARG(w.size() == 4, what, ": bbox_reg_weights needs 4 numbers, got ", w.size());
  h.bbox_reg_weights = {w[0], w[1], w[2], w[3]};
  h.representation_size = opt_int(o, "representation_size", h.representation_size);
  const int64_t mc = opt_int(o, "mask_channels", 256);
  h.mask_layers = opt_ints(o, "mask_layers", {mc, mc, mc, mc});
  h.mask_dim_reduced = mc;
  h.mask_dilation = opt_int(o, "mask_dilation", h.mask_dilation);
  h.aligned = opt_bool(o, "roi_aligned", h.aligned);
  h.roi_scales = opt_string(o, "roi_scales", h.roi_scales);
  check_roi_scales(h.roi_scales, what);
  h.box_head = opt_string(o, "box_head", h.box_head);
  MTPD_CHECK_ARG(h.box_head == "two_mlp" || h.box_head == "conv_fc", what,
                 ": box_head must be \"two_mlp\" or \"conv_fc\", got \"", h.box_head, "\"");
  h.box_conv_layers = opt_ints(o, "box_conv_layers", h.box_conv_layers);
  for (int64_t l : h.box_conv_layers) MTPD_CHECK_ARG(l > 0, what, ": box_conv_layers must be positive, got ", l);
  h.head_norm = opt_string(o, "head_norm", h.head_norm);
  MTPD_CHECK_ARG(h.head_norm == "none" || h.head_norm == "bn", what, ": head_norm must be \"none\" or \"bn\", got \"",
                 h.head_norm, "\"");
  return r;
}

Json MaskRCNNOptions::to_json() const {
  Json o;
  o["backbone"] = backbone.name;
  o["width_mult"] = backbone.width_mult;
  o["trainable_layers"] = backbone.trainable_layers;
  o["norm_layer"] = backbone.norm_layer;
  o["returned_layers"] = backbone.returned_layers;
  o["fpn_channels"] = backbone.fpn_channels;
  if (backbone.groups > 0) o["groups"] = backbone.groups;
  if (backbone.width_per_group > 0) o["width_per_group"] = backbone.width_per_group;
  if (!backbone.layers.empty()) o["layers"] = backbone.layers;
  if (backbone.stochastic_depth_prob >= 0) o["stochastic_depth_prob"] = backbone.stochastic_depth_prob;
  o["num_classes"] = num_classes;
  o["min_size"] = transform.min_size;
  o["max_size"] = transform.max_size;
  o["image_mean"] = transform.image_mean;
  o["image_std"] = transform.image_std;
  o["size_divisible"] = transform.size_divisible;
  o["anchor_sizes"] = rpn.anchor_sizes;
  o["aspect_ratios"] = rpn.aspect_ratios;
  o["rpn_conv_depth"] = rpn.conv_depth;
  o["rpn_pre_nms_top_n_train"] = rpn.pre_nms_top_n_train;
  o["rpn_pre_nms_top_n_test"] = rpn.pre_nms_top_n_test;
  o["rpn_post_nms_top_n_train"] = rpn.post_nms_top_n_train;
  o["rpn_post_nms_top_n_test"] = rpn.post_nms_top_n_test;
  o["rpn_nms_thresh"] = rpn.nms_thresh;
  o["rpn_fg_iou_thresh"] = rpn.fg_iou_thresh;
  o["rpn_bg_iou_thresh"] = rpn.bg_iou_thresh;
  o["rpn_batch_size_per_image"] = rpn.batch_size_per_image;
  o["rpn_positive_fraction"] = rpn.positive_fraction;
  o["rpn_score_thresh"] = rpn.score_thresh;
  o["box_score_thresh"] = roi.score_thresh;
  o["box_nms_thresh"] = roi.nms_thresh;
  o["box_detections_per_img"] = roi.detections_per_img;
  o["box_fg_iou_thresh"] = roi.fg_iou_thresh;
  o["box_bg_iou_thresh"] = roi.bg_iou_thresh;
  o["box_batch_size_per_image"] = roi.batch_size_per_image;
  o["box_positive_fraction"] = roi.positive_fraction;
  o["bbox_reg_weights"] = roi.bbox_reg_weights;
  o["representation_size"] = roi.representation_size;
  if (masks) {
    o["mask_channels"] = roi.mask_dim_reduced;
    o["mask_layers"] = roi.mask_layers;
    o["mask_dilation"] = roi.mask_dilation;
  }
  o["roi_aligned"] = roi.aligned;
  // the _v2 layout's options, written where they differ from v1's (v1 configs stay as they were)
  if (backbone.fpn_norm != "none") o["fpn_norm"] = backbone.fpn_norm;
  if (roi.box_head != "two_mlp") {
    o["box_head"] = roi.box_head;
    o["box_conv_layers"] = roi.box_conv_layers;
  }
  if (roi.head_norm != "none") o["head_norm"] = roi.head_norm;
  if (rpn.anchor_style != "torchvision") o["anchor_style"] = rpn.anchor_style;
  if (roi.roi_scales != "infer") o["roi_scales"] = roi.roi_scales;
  return o;
}

namespace {
RoIHeadsOptions scaled_heads(const MaskRCNNOptions& o) {
  RoIHeadsOptions h = o.roi;
  const double m = o.backbone.width_mult;
  h.num_classes = o.num_classes + 1;  // + background
  h.representation_size = scaled_width(h.representation_size, m);
  for (auto& l : h.mask_layers) l = scaled_width(l, m);
  for (auto& l : h.box_conv_layers) l = scaled_width(l, m);
  h.mask_dim_reduced = scaled_width(h.mask_dim_reduced, m);
  return h;
}
}  // namespace

MaskRCNNImpl::MaskRCNNImpl(MaskRCNNOptions o) : options_(std::move(o)), transform_(options_.transform) {
  backbone = register_module("backbone", BackboneWithFPN(options_.backbone));
  const int64_t c = backbone->out_channels();
  rpn = register_module("rpn", RegionProposalNetwork(c, options_.rpn));
  RoIHeadsOptions heads = scaled_heads(options_);
  heads.strides = pooled_strides(*backbone);
  roi_heads = register_module("roi_heads", RoIHeads(c, heads));
}

void MaskRCNNImpl::set_roi_scales(const std::vector<double>& scales) {
  set_two_stage_roi_scales(arch(), *backbone, roi_heads, scales);
}

std::vector<std::string> MaskRCNNImpl::feature_names() const {
  std::vector<std::string> out;
  for (auto l : backbone->levels()) out.push_back("p" + std::to_string(l));
  return out;
}

std::vector<int64_t> MaskRCNNImpl::feature_strides() const {
  std::vector<int64_t> out;
  for (auto l : backbone->levels()) out.push_back(int64_t{1} << l);
  return out;
}

std::vector<ImageSize> MaskRCNNImpl::eval_image_sizes(const std::vector<ImageSize>& original_sizes) const {
  std::vector<ImageSize> out;
  for (size_t i = 0; i < original_sizes.size(); ++i) {
    const auto [h, w] = original_sizes[i];
    MTPD_CHECK_SHAPE(h > 0 && w > 0, arch(), ": image ", i, " size must be positive, got (", h, ", ", w, ")");
    out.push_back(transform_.resized_size(h, w, static_cast<double>(options_.transform.min_size.back())));
  }
  return out;
}

ImageBatch MaskRCNNImpl::prepare(const std::vector<at::Tensor>& images, const std::vector<Target>* targets) {
  check_images_and_targets(images, targets, arch());
  const c10::Device dev = device();
  std::vector<at::Tensor> on_device;
  for (const auto& im : images) on_device.push_back(im.to(dev, at::kFloat));
  if (is_training() && options_.transform.min_size.size() == 1) {
    // torchvision draws torch_choice(min_size) for every training image even with one size; the
    // transform draws only when there is a choice. Drawing here keeps the generator's stream (and
    // so the samplers' draws) torchvision's.
    for (size_t i = 0; i < images.size(); ++i) (void)at::empty({1}, at::kFloat).uniform_(0.0, 1.0);
  }
  return transform_(on_device, targets, is_training());
}

DetectorOutput MaskRCNNImpl::forward_batch(const ImageBatch& batch, const RunOptions& what) {
  return two_stage_forward(arch(), backbone, rpn, roi_heads, transform_, feature_names(), options_.num_classes, options_.masks, batch,
                           what);
}

namespace {
BuiltModule make_mask_rcnn(const Json& o) {
  return {std::make_shared<MaskRCNNImpl>(MaskRCNNOptions::from_json(o, true)), {}};
}
BuiltModule make_faster_rcnn(const Json& o) {
  return {std::make_shared<MaskRCNNImpl>(MaskRCNNOptions::from_json(o, false)), {}};
}

// The RPN alone on given FPN maps, for checks against reference proposals: options as
// mask_rcnn's (channels from width_mult and fpn_channels), weights under the RPN's own names
// (head.*). forward(p2, ..., p6, image_sizes (N, 2), batch_size (2): the padded (H, W)) returns per
// image the proposals (P_i, 4) in resized pixels, then per image their objectness (P_i), then the
// anchors (T, 4) of every level; the mode (train / eval) picks the pre/post-NMS top-n.
BuiltModule make_rpn(const Json& o) {
  const auto opts = MaskRCNNOptions::from_json(o, false);
  const auto& b = opts.backbone;
  const int64_t c = scaled_width(b.fpn_channels, b.width_mult);
  auto rpn = std::make_shared<RegionProposalNetworkImpl>(c, opts.rpn);
  const size_t levels = opts.rpn.anchor_sizes.size();
  return {rpn, [rpn, levels](const std::vector<at::Tensor>& x) {
            MTPD_CHECK_SHAPE(x.size() == levels + 2, "models.RegionProposalNetwork takes ", levels,
                             " maps, image_sizes (N, 2), batch_size (2): ", levels + 2, " tensors, got ", x.size());
            at::Tensor sizes = x[levels].to(at::kCPU, at::kLong).contiguous();
            at::Tensor batch = x[levels + 1].to(at::kCPU, at::kLong).reshape({-1});
            MTPD_CHECK_SHAPE(sizes.dim() == 2 && sizes.size(1) == 2 && sizes.size(0) == x[0].size(0),
                             "models.RegionProposalNetwork: image_sizes must be (", x[0].size(0), ", 2), got ",
                             sizes.sizes());
            MTPD_CHECK_SHAPE(batch.numel() == 2, "models.RegionProposalNetwork: batch_size must be (2), got ",
                             x[levels + 1].sizes());
            std::vector<std::array<int64_t, 2>> image_sizes;
            for (int64_t i = 0; i < sizes.size(0); ++i)
              image_sizes.push_back({sizes[i][0].item<int64_t>(), sizes[i][1].item<int64_t>()});
            std::vector<at::Tensor> maps;
            for (size_t l = 0; l < levels; ++l) maps.push_back(x[l].to(at::kFloat));
            at::NoGradGuard no_grad;
            RPNOutput r = rpn->forward(maps, image_sizes, {batch[0].item<int64_t>(), batch[1].item<int64_t>()}, nullptr);
            std::vector<at::Tensor> out = r.boxes;
            out.insert(out.end(), r.scores.begin(), r.scores.end());
            out.push_back(r.anchors);
            return out;
          }};
}
}  // namespace

MTPD_REGISTER_MODULE("mask_rcnn",
                     "Mask R-CNN with a ResNet/ResNeXt/Swin FPN backbone (torchvision names; options: backbone, "
                     "num_classes (without background), min_size, max_size, width_mult, trainable_layers, rpn_*, "
                     "box_*, ...; the _v2 layout: rpn_conv_depth 2, fpn_norm, box_head \"conv_fc\", head_norm)",
                     make_mask_rcnn);
MTPD_REGISTER_MODULE("models.RegionProposalNetwork",
                     "Mask R-CNN's RPN alone on given FPN maps (checks): mask_rcnn's options; forward(maps..., "
                     "image_sizes (N, 2), batch_size (2)) -> per image proposals, per image objectness, the anchors",
                     make_rpn);
MTPD_REGISTER_MODULE("faster_rcnn",
                     "Faster R-CNN (Mask R-CNN without the mask branch; the same options)", make_faster_rcnn);

}  // namespace mtpd
