// Cascade R-CNN's RoI heads (Cai & Vasconcelos, CVPR 2018) with the semantics of mmdetection
// 2.x's CascadeRoIHead as configured by cascade_mask_rcnn_r50_fpn: S box stages (default 3), each
// a TwoMLPHead + FastRCNNPredictor of its own with its own IoU threshold (0.5 / 0.6 / 0.7), box
// coder weights (mmdet target_stds 0.1/0.1/0.2/0.2, 0.05/0.05/0.1/0.1, 0.033/0.033/0.067/0.067,
// i.e. weights 1/std) and loss weight (1 / 0.5 / 0.25); regression class-agnostic by default.
//
// Names (mtpd's own; src/zoo/mmdet.ts maps mmdetection's roi_head.* onto them):
//   box_head.{s}.{fc6,fc7}                 (mmdet roi_head.bbox_head.{s}.shared_fcs.{0,1})
//   box_predictor.{s}.{cls_score,bbox_pred} (mmdet fc_cls (background last there), fc_reg)
//   mask_head.{m}.{0..3}.0                 (mmdet roi_head.mask_head.{m}.convs.{j}.conv)
//   mask_predictor.{m}.{conv5_mask,mask_fcn_logits} (mmdet upsample, conv_logits)
// Labels are torchvision's: class output 0 is the background, 1..C-1 the classes; the mask
// predictors have C-1 outputs (real classes only, as mmdetection's FCNMaskHead).
//
// Training, per stage s: the proposals plus the gt boxes are matched at IoU thr_s (no
// low-quality matches), 512 sampled at 0.25 positive (the shared torchvision sampler), losses
// "s{s}.loss_classifier" (cross entropy, mean), "s{s}.loss_box_reg" (smooth L1 with beta
// box_loss_beta (1.0, mmdet's) summed over the positives' deltas, over the number sampled),
// "s{s}.loss_mask" (per-pixel BCE against the gt masks RoIAligned onto the positives), each times
// the stage's loss weight. The next stage's proposals are this stage's sampled proposals, minus
// the gt boxes, regressed by this stage (detached; the background rows by their best class)
// and clipped to the image.
// Inference: every stage scores the boxes the previous one regressed; the class logits are
// averaged over the stages, softmaxed, and the last stage's regression of its input boxes gives
// the boxes; per-class score threshold, NMS per class, top detections_per_img (mmdet's
// multiclass_nms: no small-box filter). Masks: every mask head on the final boxes, sigmoid of the
// detected class, averaged over the heads (mmdet's merge_aug_masks).
//
// mask_per_stage (default true, mmdetection's config: one mask head per stage, trained at every
// stage); false: a single mask head on the last stage (the Cascade R-CNN paper's choice).
// mask_paste (the detector's pasting of the 28 x 28 masks into the image, models/paste_masks.h):
// "torchvision" (default, paste_masks_in_image) or "mmdet" (paste_masks_mmdet, what mmdetection's
// get_seg_masks does; `mtpd import` sets it for mmdetection checkpoints).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "models/box_coder.h"
#include "models/detector.h"
#include "models/matcher.h"
#include "models/roi_heads.h"
#include "models/sampler.h"
#include "ops/poolers.h"

namespace mtpd {

struct CascadeRoIHeadsOptions {
  int64_t num_classes = 81;  // background included (output 0)
  int64_t representation_size = 1024;
  std::vector<int64_t> mask_layers{256, 256, 256, 256};
  int64_t mask_dilation = 1;
  int64_t mask_dim_reduced = 256;
  bool masks = true;
  bool mask_per_stage = true;
  std::vector<double> stage_iou_thresholds{0.5, 0.6, 0.7};
  std::vector<double> stage_loss_weights{1.0, 0.5, 0.25};
  std::vector<std::array<double, 4>> stage_bbox_reg_weights{
      {10.0, 10.0, 5.0, 5.0}, {20.0, 20.0, 10.0, 10.0}, {1 / 0.033, 1 / 0.033, 1 / 0.067, 1 / 0.067}};
  bool class_agnostic = true;
  double box_loss_beta = 1.0;
  double score_thresh = 0.05, nms_thresh = 0.5;
  int64_t detections_per_img = 100;
  int64_t batch_size_per_image = 512;
  double positive_fraction = 0.25;
  bool aligned = true;         // RoIAlign aligned (mmdet's RoIAlign default), also for the mask targets
  int64_t sampling_ratio = 0;  // 0: adaptive grid (mmdet's); torchvision's Mask R-CNN uses 2
  std::string roi_scales = "strides";  // the poolers' scales: mmdet's 1/stride, or "infer" (RoIHeadsOptions)
  std::vector<int64_t> strides;        // the pooled levels' strides (filled by the detector)
  bool binarize_mask_targets = true;  // mmdet's BitmapMasks.crop_and_resize(binarize=True): >= 0.5
  std::string mask_paste = "torchvision";  // or "mmdet"

  int64_t num_stages() const { return static_cast<int64_t>(stage_iou_thresholds.size()); }
};

// What each stage saw and said (concatenated over the images, image 0 first), for checks.
struct CascadeStage {
  at::Tensor rois;          // (K, 4) the boxes the stage scored, resized pixels
  at::Tensor class_logits;  // (K, C)
  at::Tensor box_deltas;    // (K, 4) class-agnostic, else (K, 4 C)
};

class CascadeRoIHeadsImpl : public torch::nn::Module {
 public:
  CascadeRoIHeadsImpl(int64_t in_channels, CascadeRoIHeadsOptions options);
  // features: P2..P5; proposals: per image (P_i, 4) in resized pixels; targets resized, labels
  // 1.. (torchvision's), masks (K, H, W) when the model has masks.
  std::map<std::string, at::Tensor> losses(const std::vector<at::Tensor>& features,
                                           const std::vector<at::Tensor>& proposals,
                                           const std::vector<std::array<int64_t, 2>>& image_sizes,
                                           const std::vector<Target>& targets);
  // Detections in resized pixels, torchvision labels; masks (D, 1, 28, 28) probabilities. With
  // `stages`, each stage's inputs and outputs are written there.
  std::vector<Detection> detect(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& proposals,
                                const std::vector<std::array<int64_t, 2>>& image_sizes,
                                std::vector<CascadeStage>* stages = nullptr);
  const CascadeRoIHeadsOptions& options() const { return options_; }
  // As RoIHeads's: the poolers' scales in use, and restoring them.
  const std::vector<double>& pool_scales() const { return box_pool_.kept_scales(); }
  void keep_pool_scales(const std::vector<double>& scales) {
    box_pool_.keep_scales(scales);
    mask_pool_.keep_scales(scales);
  }

  torch::nn::ModuleList box_head{nullptr}, box_predictor{nullptr}, mask_head{nullptr}, mask_predictor{nullptr};

 private:
  // (K, 4 or 4 C) deltas of stage s applied to (K, 4) boxes, clipped to (h, w): (K, 4) for the
  // boxes' `labels` (class-agnostic: the one box), or every class's (K, C, 4) when labels is undefined.
  at::Tensor regress(int64_t s, const at::Tensor& deltas, const at::Tensor& boxes, const at::Tensor& labels,
                     std::array<int64_t, 2> size) const;
  std::pair<at::Tensor, at::Tensor> box_forward(int64_t s, const std::vector<at::Tensor>& features,
                                                const std::vector<at::Tensor>& boxes,
                                                const std::vector<std::array<int64_t, 2>>& image_sizes);
  at::Tensor mask_logits(int64_t m, const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes,
                         const std::vector<std::array<int64_t, 2>>& image_sizes);
  int64_t num_mask_heads() const;
  CascadeRoIHeadsOptions options_;
  ops::MultiScaleRoIAlign box_pool_, mask_pool_;
  std::vector<BoxCoder> box_coders_;
  std::vector<Matcher> matchers_;
  BalancedPositiveNegativeSampler sampler_;
};
TORCH_MODULE(CascadeRoIHeads);

// Reads the cascade's own options from a detector's options ("stage_iou_thresholds",
// "stage_loss_weights", "stage_bbox_reg_weights" (S x 4 numbers), "class_agnostic",
// "box_loss_beta", "roi_sampling_ratio", "mask_per_stage", "binarize_mask_targets", "mask_paste") onto `h`;
// `what` names the detector in errors. The keys it reads are cascade_option_keys().
void read_cascade_options(const Json& o, const std::string& what, CascadeRoIHeadsOptions& h);
const std::vector<std::string>& cascade_option_keys();
void write_cascade_options(const CascadeRoIHeadsOptions& h, Json& o);

}  // namespace mtpd
