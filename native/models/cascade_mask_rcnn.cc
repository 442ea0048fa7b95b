#include "models/cascade_mask_rcnn.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "models/width.h"
#include "models/two_stage.h"

namespace mtpd {

namespace {
// mask_rcnn's single-stage box options that the cascade sets per stage instead
const std::vector<std::pair<std::string, std::string>> kPerStage = {
    {"box_fg_iou_thresh", "stage_iou_thresholds"},
    {"box_bg_iou_thresh", "stage_iou_thresholds"},
    {"bbox_reg_weights", "stage_bbox_reg_weights"}};
}  // namespace

CascadeMaskRCNNOptions CascadeMaskRCNNOptions::from_json(const Json& o, bool masks) {
  const std::string what = masks ? "cascade_mask_rcnn" : "cascade_rcnn";
  MTPD_CHECK_ARG(o.is_object(), what, ": options must be an object");
  for (const auto& [k, instead] : kPerStage)
    MTPD_CHECK_ARG(!o.contains(k), what, ": option \"", k, "\" is per stage in a cascade; use \"", instead, "\"");
  for (const char* k : {"box_head", "box_conv_layers", "head_norm"})
    MTPD_CHECK_ARG(!o.contains(k), what, ": option \"", k, "\" is not supported: the cascade's box and mask heads are "
                   "mmdetection's (TwoMLPHead per stage, convs without norm)");
  Json rest = o;
  for (const auto& k : cascade_option_keys()) rest.erase(k);
  if (!rest.contains("roi_aligned")) rest["roi_aligned"] = true;  // mmdetection's RoIAlign
  if (!rest.contains("roi_scales")) rest["roi_scales"] = "strides";  // mmdetection's featmap_strides
  CascadeMaskRCNNOptions r;
  r.base = MaskRCNNOptions::from_json(rest, masks);
  auto& h = r.cascade;
  read_cascade_options(o, what, h);
  const auto& b = r.base.roi;
  const double m = r.base.backbone.width_mult;
  h.masks = masks;
  h.num_classes = r.base.num_classes + 1;  // + background
  h.representation_size = scaled_width(b.representation_size, m);
  h.mask_layers = b.mask_layers;
  for (auto& l : h.mask_layers) l = scaled_width(l, m);
  h.mask_dim_reduced = scaled_width(b.mask_dim_reduced, m);
  h.mask_dilation = b.mask_dilation;
  h.score_thresh = b.score_thresh;
  h.nms_thresh = b.nms_thresh;
  h.detections_per_img = b.detections_per_img;
  h.batch_size_per_image = b.batch_size_per_image;
  h.positive_fraction = b.positive_fraction;
  h.aligned = b.aligned;
  h.roi_scales = b.roi_scales;
  return r;
}

Json CascadeMaskRCNNOptions::to_json() const {
  Json o = base.to_json();
  for (const auto& kv : kPerStage) o.erase(kv.first);
  write_cascade_options(cascade, o);
  return o;
}

CascadeMaskRCNNImpl::CascadeMaskRCNNImpl(CascadeMaskRCNNOptions o)
    : options_(std::move(o)), transform_(options_.base.transform) {
  backbone = register_module("backbone", BackboneWithFPN(options_.base.backbone));
  const int64_t c = backbone->out_channels();
  rpn = register_module("rpn", RegionProposalNetwork(c, options_.base.rpn));
  CascadeRoIHeadsOptions heads = options_.cascade;
  heads.strides = pooled_strides(*backbone);
  roi_heads = register_module("roi_heads", CascadeRoIHeads(c, heads));
}

void CascadeMaskRCNNImpl::set_roi_scales(const std::vector<double>& scales) {
  set_two_stage_roi_scales(arch(), *backbone, roi_heads, scales);
}

std::vector<std::string> CascadeMaskRCNNImpl::feature_names() const {
  std::vector<std::string> out;
  for (auto l : backbone->levels()) out.push_back("p" + std::to_string(l));
  return out;
}

std::vector<int64_t> CascadeMaskRCNNImpl::feature_strides() const {
  std::vector<int64_t> out;
  for (auto l : backbone->levels()) out.push_back(int64_t{1} << l);
  return out;
}

std::vector<ImageSize> CascadeMaskRCNNImpl::eval_image_sizes(const std::vector<ImageSize>& original_sizes) const {
  std::vector<ImageSize> out;
  for (size_t i = 0; i < original_sizes.size(); ++i) {
    const auto [h, w] = original_sizes[i];
    MTPD_CHECK_SHAPE(h > 0 && w > 0, arch(), ": image ", i, " size must be positive, got (", h, ", ", w, ")");
    out.push_back(transform_.resized_size(h, w, static_cast<double>(options_.base.transform.min_size.back())));
  }
  return out;
}

ImageBatch CascadeMaskRCNNImpl::prepare(const std::vector<at::Tensor>& images, const std::vector<Target>* targets) {
  check_images_and_targets(images, targets, arch());
  const c10::Device dev = device();
  std::vector<at::Tensor> on_device;
  for (const auto& im : images) on_device.push_back(im.to(dev, at::kFloat));
  if (is_training() && options_.base.transform.min_size.size() == 1) {
    // as mask_rcnn: torchvision's transform draws torch_choice(min_size) for every training image
    for (size_t i = 0; i < images.size(); ++i) (void)at::empty({1}, at::kFloat).uniform_(0.0, 1.0);
  }
  return transform_(on_device, targets, is_training());
}

DetectorOutput CascadeMaskRCNNImpl::forward_batch(const ImageBatch& batch, const RunOptions& what) {
  return two_stage_forward(arch(), backbone, rpn, roi_heads, transform_, feature_names(), options_.base.num_classes, options_.base.masks, batch,
                           what, options_.cascade.mask_paste);
}

namespace {

BuiltModule make_cascade_mask_rcnn(const Json& o) {
  return {std::make_shared<CascadeMaskRCNNImpl>(CascadeMaskRCNNOptions::from_json(o, true)), {}};
}
BuiltModule make_cascade_rcnn(const Json& o) {
  return {std::make_shared<CascadeMaskRCNNImpl>(CascadeMaskRCNNOptions::from_json(o, false)), {}};
}

// The cascade's RoI heads alone, on given FPN maps and proposals (one image), for checks against
// reference outputs: options as cascade_mask_rcnn's (widths from backbone / width_mult /
// fpn_channels). forward(p2, p3, p4, p5, proposals (K, 4), image_size (2)) in eval mode returns,
// per stage, rois (K, 4), class_logits (K, C + 1), box_deltas (K, 4), then the detections:
// boxes (D, 4), scores (D), labels (D) (0..C-1), masks (D, 1, 28, 28) (mask models) and, with
// the option paste (default false), the masks pasted into the image_size image as the detector
// pastes them (mask_paste), (D, 1, H, W) probabilities. In train
// mode it also takes gt_boxes (G, 4), gt_labels (G) (0..C-1) and, with masks, gt_masks (G, H, W),
// and returns the losses in name order: per stage s{s}.loss_box_reg, s{s}.loss_classifier[, s{s}.loss_mask].
BuiltModule make_cascade_heads(const Json& o) {
  const bool masks = opt_bool(o, "masks", true);
  const bool paste = opt_bool(o, "paste", false);
  MTPD_CHECK_ARG(masks || !paste, "models.CascadeRoIHeads: paste needs masks");
  Json rest = o;
  rest.erase("masks");
  rest.erase("paste");
  auto opts = CascadeMaskRCNNOptions::from_json(rest, masks);
  const auto& b = opts.base.backbone;
  const int64_t c = scaled_width(b.fpn_channels, b.width_mult);
  // the pooled levels the detector's backbone would give: returned layer l is level l + 1
  for (int64_t l : b.returned_layers) opts.cascade.strides.push_back(int64_t{1} << (l + 1));
  auto heads = std::make_shared<CascadeRoIHeadsImpl>(c, opts.cascade);
  return {heads, [heads, masks, paste](const std::vector<at::Tensor>& x) {
            const bool train = heads->is_training();
            const size_t want = train ? (masks ? 9 : 8) : 6;
            MTPD_CHECK_SHAPE(x.size() == want, "models.CascadeRoIHeads (", train ? "train" : "eval",
                             " mode) takes p2, p3, p4, p5, proposals, image_size",
                             train ? (masks ? ", gt_boxes, gt_labels, gt_masks" : ", gt_boxes, gt_labels") : "",
                             ": ", want, " tensors, got ", x.size());
            std::vector<at::Tensor> maps(x.begin(), x.begin() + 4);
            at::Tensor size = x[5].to(at::kCPU, at::kLong).reshape({-1});
            MTPD_CHECK_SHAPE(size.numel() == 2, "models.CascadeRoIHeads: image_size must be (2), got ", x[5].sizes());
            std::vector<std::array<int64_t, 2>> sizes{{size[0].item<int64_t>(), size[1].item<int64_t>()}};
            MTPD_CHECK_SHAPE(x[4].dim() == 2 && x[4].size(1) == 4, "models.CascadeRoIHeads: proposals must be (K, 4)");
            std::vector<at::Tensor> props{x[4].to(at::kFloat)};
            std::vector<at::Tensor> out;
            if (train) {
              Target t{x[6].to(at::kFloat), x[7].to(at::kLong) + 1, masks ? x[8] : at::Tensor()};
              for (auto& [k, v] : heads->losses(maps, props, sizes, {t})) out.push_back(v);
              return out;
            }
            std::vector<CascadeStage> stages;
            auto dets = heads->detect(maps, props, sizes, &stages);
            for (const auto& s : stages) {
              out.push_back(s.rois);
              out.push_back(s.class_logits);
              out.push_back(s.box_deltas);
            }
            out.push_back(dets[0].boxes);
            out.push_back(dets[0].scores);
            out.push_back(dets[0].labels - 1);
            if (masks) out.push_back(dets[0].masks);
            if (paste) {
              const auto [h, w] = sizes[0];
              const auto& d = dets[0];
              out.push_back(heads->options().mask_paste == "mmdet" ? paste_masks_mmdet(d.masks, d.boxes, h, w)
                                                                   : paste_masks_in_image(d.masks, d.boxes, h, w));
            }
            return out;
          }};
}

}  // namespace

MTPD_REGISTER_MODULE("cascade_mask_rcnn",
                     "Cascade Mask R-CNN (mmdetection's cascade RoI heads on Mask R-CNN's backbone and RPN; "
                     "mask_rcnn's options plus stage_iou_thresholds, stage_loss_weights, stage_bbox_reg_weights, "
                     "class_agnostic, box_loss_beta, roi_sampling_ratio, mask_per_stage)",
                     make_cascade_mask_rcnn);
MTPD_REGISTER_MODULE("cascade_rcnn", "Cascade R-CNN (cascade_mask_rcnn without masks; the same options)",
                     make_cascade_rcnn);
MTPD_REGISTER_MODULE("models.CascadeRoIHeads",
                     "the cascade's RoI heads alone on given FPN maps and proposals of one image (checks); "
                     "cascade_mask_rcnn's options, masks (default true) and paste (default false)",
                     make_cascade_heads);

}  // namespace mtpd
