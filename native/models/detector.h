// The detector contract: what every detector (one-stage RetinaNet now, two-stage Mask R-CNN
// later) offers to training, distillation, evaluation and the binding.
//
// Conventions (as torchvision's detection models):
//  - run() takes a list of images, each (3, H, W) float in 0..1, in any size; the model's
//    GeneralizedRCNNTransform normalizes, resizes (min_size/max_size) and pads them to a
//    multiple of 32 into one batch.
//  - Targets are in the pixels of the images as given; losses are computed on targets
//    resized with the images.
//  - Detections come back in the pixels of the images as given (boxes xyxy).
//  - Features are named FPN taps ("p3".."p7" for RetinaNet, "p2".."p6" for two-stage models),
//    each (N, C, Hl, Wl) over the padded batch. feature_strides() gives each tap's real stride
//    (4..128 for p2..p7): image i, resized to image_sizes[i] = (h, w), occupies the top-left
//    ceil(h / s) x ceil(w / s) cells of a tap of stride s (P6/P7 are ceil-sized, so the stride
//    is not padded size / map size). eval_image_sizes() is the resize rule alone. Whether they carry autograd history is decided
//    by the caller's grad mode: with grad enabled (training a student), they are part of the
//    same graph as the losses, so one backward() covers detection and distillation losses.
//  - Training/eval mode (torch::nn::Module::train()) decides BatchNorm / drop-path behaviour;
//    RunOptions decides what is computed. Both may be asked of the same call (a student in
//    train mode computing losses and features). Detections are computed without grad.
//
// A teacher is run as: eval mode, NoGradGuard, RunOptions{.features = true}; the head is then
// skipped entirely.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/registry.h"

namespace mtpd {

// Ground truth for one image.
struct Target {
  at::Tensor boxes;   // (K, 4) float, xyxy, in the pixels of the image handed to run()
  at::Tensor labels;  // (K) int64, raw class indices (0..num_classes-1; torchvision COCO uses 1..90)
  at::Tensor masks;   // optional (K, H, W) uint8 instance masks (two-stage models); undefined if absent
};

// Post-processed detections for one image.
struct Detection {
  at::Tensor boxes;   // (D, 4) float, xyxy, in the pixels of the ORIGINAL image
  at::Tensor scores;  // (D) float, sorted descending
  at::Tensor labels;  // (D) int64
  at::Tensor masks;   // optional (D, 1, H, W) float in 0..1 (Mask R-CNN); undefined otherwise
};

// What a call computes.
struct RunOptions {
  bool losses = false;      // needs targets; named scalar losses
  bool features = false;    // named FPN taps
  bool detections = false;  // post-processed detections (computed under NoGradGuard)
  // Losses built from plain tensor ops only, so their gradients can be differentiated again
  // (Hessian products); otherwise fused kernels may keep only their gradient (ops/focal_loss.h).
  bool twice_differentiable = false;
};

using ImageSize = std::array<int64_t, 2>;  // (H, W)

// The images after the model's transform (GeneralizedRCNNTransform).
struct ImageBatch {
  at::Tensor tensors;                     // (N, 3, Hp, Wp) normalized, zero-padded to size_divisible
  std::vector<ImageSize> image_sizes;     // per image after resize, before padding
  std::vector<ImageSize> original_sizes;  // per image as handed to prepare()
  std::vector<Target> targets;            // resized with the images (empty when no targets were given)
};

struct DetectorOutput {
  // Named scalar losses, e.g. RetinaNet: "classification", "bbox_regression";
  // Mask R-CNN: "loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask".
  // The total is their sum (callers add weights). Distillation adds keys prefixed "distill.".
  std::map<std::string, at::Tensor> losses;
  // Named feature taps in feature_names() order of keys ("p3".."p7"); (N, C, Hl, Wl).
  std::map<std::string, at::Tensor> features;
  // Per image, when RunOptions::detections.
  std::vector<Detection> detections;
  // From the transform (FGD's masks and adapters need them): after resize, before padding.
  std::vector<ImageSize> image_sizes;
  std::vector<ImageSize> original_sizes;
  ImageSize batch_size{0, 0};      // padded (Hp, Wp) of the batch the features were computed on
  std::vector<Target> targets;     // targets in the resized images' pixels (empty without targets)
};

class Detector : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  ~Detector() override = default;

  // Normalize, resize and batch the images (moved to the model's device); resize the targets
  // with them. Throws ShapeError/ArgumentError naming images[i] / targets[i] on bad input.
  virtual ImageBatch prepare(const std::vector<at::Tensor>& images, const std::vector<Target>* targets) = 0;

  // Runs the model on a prepared batch. RunOptions::losses needs batch.targets.
  virtual DetectorOutput forward_batch(const ImageBatch& batch, const RunOptions& what) = 0;

  // prepare() + forward_batch().
  DetectorOutput run(const std::vector<at::Tensor>& images, const std::vector<Target>* targets,
                     const RunOptions& what) {
    return forward_batch(prepare(images, targets), what);
  }

  // Names of the feature taps, finest first: {"p3","p4","p5","p6","p7"} for RetinaNet.
  virtual std::vector<std::string> feature_names() const = 0;
  // Channels of every feature tap (256 for torchvision FPNs; less with width_mult).
  virtual int64_t feature_channels() const = 0;
  // Stride of each tap relative to the padded input (8, 16, 32, 64, 128 for RetinaNet), in
  // feature_names() order.
  virtual std::vector<int64_t> feature_strides() const = 0;
  // tap -> stride, from the two above.
  std::map<std::string, int64_t> feature_stride_map() const;
  // Per image (H, W) after this model's resize in eval mode, for images of these (H, W): the
  // image_sizes prepare() gives an eval-mode model, without resizing anything (what cached
  // teacher features were computed at).
  virtual std::vector<ImageSize> eval_image_sizes(const std::vector<ImageSize>& original_sizes) const = 0;
  virtual int64_t num_classes() const = 0;
  // Registry name and resolved options (every default filled in), for run directories.
  virtual std::string arch() const = 0;
  virtual Json config() const = 0;
  // The model's device (that of its first parameter or buffer).
  c10::Device device() const;
  // The scales its RoI poolers use, finest level first: empty for a model without RoI pooling or
  // one that infers them (torchvision's MultiScaleRoIAlign) before its first batch. Inferred
  // scales are kept from the first batch on: state outside the weights, which a checkpoint
  // carries and restores (set_roi_scales) so a resumed process pools as the interrupted one did.
  virtual std::vector<double> roi_scales() const { return {}; }
  // Restores roi_scales() (empty: infer again from the next batch). ArgumentError for a model
  // without RoI pooling given any, or for scales it cannot take (count, not powers of two,
  // others than a fixed-scale model's own).
  virtual void set_roi_scales(const std::vector<double>& scales);
};

// The Detector inside a built module, or nullptr when the module is not a detector.
std::shared_ptr<Detector> as_detector(const BuiltModule& built);
// Builds a registered detector by name (e.g. "retinanet"); ArgumentError if `name` is
// unknown or not a detector.
std::shared_ptr<Detector> build_detector(const std::string& name, const Json& options);

// Validation shared by implementations: images[i] must be (3, H, W) floating point with
// H, W > 0; targets[i].boxes (K, 4) floating, labels (K) integral, K matching. `what` prefixes
// the message (e.g. "retinanet.run").
void check_images_and_targets(const std::vector<at::Tensor>& images, const std::vector<Target>* targets,
                              const std::string& what);

}  // namespace mtpd
