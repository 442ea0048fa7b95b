// RoIAlign and MultiScaleRoIAlign as parameterless modules buildable by name, so the ops can be
// run (and their gradients checked) from the API: with {"backward": true} the forward also takes
// the gradient of the output and returns the gradients of the feature maps (autograd's
// vector-Jacobian product). NMS and batched NMS the same way (indices of the kept boxes).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/module.h>

#include "core/errors.h"
#include "core/registry.h"
#include "ops/focal_loss.h"
#include "ops/nms.h"
#include "ops/poolers.h"
#include "ops/roi_align.h"

namespace mtpd {
namespace {

std::vector<at::Tensor> with_grads(const std::vector<at::Tensor>& inputs, const at::Tensor& out,
                                   const at::Tensor& grad_out) {
  MTPD_CHECK_SHAPE(grad_out.sizes() == out.sizes(), "expected the output gradient of shape ", out.sizes(), ", got ",
                   grad_out.sizes());
  auto grads = torch::autograd::grad({out}, inputs, {grad_out.to(out.options())}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  std::vector<at::Tensor> res{out.detach()};
  for (size_t i = 0; i < grads.size(); ++i) res.push_back(grads[i].defined() ? grads[i] : at::zeros_like(inputs[i]));
  return res;
}

BuiltModule make_roi_align(const Json& o) {
  check_known_options(o, "ops.roi_align", {"output_size", "spatial_scale", "sampling_ratio", "aligned", "backward"});
  const int64_t s = opt_int(o, "output_size", 7);
  const double scale = opt_number(o, "spatial_scale", 1.0);
  const int64_t ratio = opt_int(o, "sampling_ratio", 2);
  const bool aligned = opt_bool(o, "aligned", false), backward = opt_bool(o, "backward", false);
  MTPD_CHECK_ARG(s > 0, "ops.roi_align: output_size must be positive, got ", s);
  return {std::make_shared<torch::nn::Module>("RoIAlign"), [=](const std::vector<at::Tensor>& x) {
            MTPD_CHECK_SHAPE(x.size() == (backward ? 3u : 2u), "ops.roi_align takes (input, rois",
                             backward ? ", grad_output" : "", "), got ", x.size(), " tensors");
            if (!backward) return std::vector<at::Tensor>{ops::roi_align(x[0], x[1], s, s, scale, ratio, aligned)};
            at::AutoGradMode grad(true);
            at::Tensor in = x[0].detach().requires_grad_(true);
            return with_grads({in}, ops::roi_align(in, x[1], s, s, scale, ratio, aligned), x[2]);
          }};
}

BuiltModule make_multi_scale(const Json& o) {
  check_known_options(o, "ops.MultiScaleRoIAlign",
                      {"levels", "output_size", "sampling_ratio", "canonical_scale", "canonical_level", "aligned",
                       "backward"});
  const int64_t levels = opt_int(o, "levels", 4);
  MTPD_CHECK_ARG(levels > 0, "ops.MultiScaleRoIAlign: levels must be positive");
  ops::MultiScaleRoIAlignOptions mo;
  mo.output_size = opt_int(o, "output_size", mo.output_size);
  mo.sampling_ratio = opt_int(o, "sampling_ratio", mo.sampling_ratio);
  mo.canonical_scale = opt_int(o, "canonical_scale", mo.canonical_scale);
  mo.canonical_level = opt_int(o, "canonical_level", mo.canonical_level);
  mo.aligned = opt_bool(o, "aligned", mo.aligned);
  const bool backward = opt_bool(o, "backward", false);
  ops::MultiScaleRoIAlign pool(mo);
  return {std::make_shared<torch::nn::Module>("MultiScaleRoIAlign"), [=](const std::vector<at::Tensor>& x) {
            const size_t want = static_cast<size_t>(levels) + 2 + (backward ? 1 : 0);
            MTPD_CHECK_SHAPE(x.size() == want, "ops.MultiScaleRoIAlign takes ", levels,
                             " maps, rois (K, 5), image_sizes (N, 2)", backward ? ", grad_output" : "", ": ", want,
                             " tensors, got ", x.size());
            const at::Tensor& rois = x[static_cast<size_t>(levels)];
            at::Tensor sizes = x[static_cast<size_t>(levels) + 1].to(at::kCPU, at::kLong).contiguous();
            MTPD_CHECK_SHAPE(rois.dim() == 2 && rois.size(1) == 5, "ops.MultiScaleRoIAlign: rois must be (K, 5)");
            MTPD_CHECK_SHAPE(sizes.dim() == 2 && sizes.size(1) == 2, "ops.MultiScaleRoIAlign: image_sizes must be (N, 2)");
            std::vector<at::Tensor> boxes;
            std::vector<std::array<int64_t, 2>> image_sizes;
            at::Tensor img = rois.select(1, 0).to(at::kLong);
            for (int64_t i = 0; i < sizes.size(0); ++i) {
              boxes.push_back(rois.index_select(0, (img == i).nonzero().select(1, 0)).slice(1, 1, 5));
              image_sizes.push_back({sizes[i][0].item<int64_t>(), sizes[i][1].item<int64_t>()});
            }
            std::vector<at::Tensor> maps(x.begin(), x.begin() + levels);
            if (!backward) return std::vector<at::Tensor>{pool(maps, boxes, image_sizes)};
            at::AutoGradMode grad(true);
            for (auto& m : maps) m = m.detach().requires_grad_(true);
            return with_grads(maps, pool(maps, boxes, image_sizes), x.back());
          }};
}

BuiltModule make_nms(const Json& o, bool batched) {
  const std::string what = batched ? "ops.batched_nms" : "ops.nms";
  check_known_options(o, what, {"iou_threshold"});
  const double thr = opt_number(o, "iou_threshold", 0.5);
  return {std::make_shared<torch::nn::Module>(batched ? "BatchedNMS" : "NMS"), [=](const std::vector<at::Tensor>& x) {
            MTPD_CHECK_SHAPE(x.size() == (batched ? 3u : 2u), what, " takes (boxes (N, 4), scores (N)",
                             batched ? ", idxs (N)" : "", "), got ", x.size(), " tensors");
            return std::vector<at::Tensor>{batched ? ops::batched_nms(x[0], x[1], x[2], thr) : ops::nms(x[0], x[1], thr)};
          }};
}

BuiltModule make_focal_loss(const Json& o) {
  check_known_options(o, "ops.sigmoid_focal_loss", {"alpha", "gamma", "twice_differentiable", "backward"});
  const double alpha = opt_number(o, "alpha", 0.25), gamma = opt_number(o, "gamma", 2.0);
  const bool twice = opt_bool(o, "twice_differentiable", false), backward = opt_bool(o, "backward", false);
  return {std::make_shared<torch::nn::Module>("SigmoidFocalLoss"), [=](const std::vector<at::Tensor>& x) {
            MTPD_CHECK_SHAPE(x.size() == (backward ? 3u : 2u), "ops.sigmoid_focal_loss takes (logits (A, K), "
                             "classes (A)", backward ? ", grad_output ()" : "", "), got ", x.size(), " tensors");
            if (!backward) return std::vector<at::Tensor>{ops::sigmoid_focal_loss_sum(x[0], x[1], alpha, gamma, twice)};
            at::AutoGradMode grad(true);
            at::Tensor in = x[0].detach().requires_grad_(true);
            return with_grads({in}, ops::sigmoid_focal_loss_sum(in, x[1], alpha, gamma, twice), x[2]);
          }};
}

}  // namespace

MTPD_REGISTER_MODULE("ops.sigmoid_focal_loss",
                     "RetinaNet's sigmoid focal loss summed over anchors: forward(logits (A, K), classes (A) int64: "
                     "class, -1 background, -2 ignored) -> () (options: alpha, gamma, twice_differentiable: "
                     "torchvision's tensor ops instead of the fused CPU kernel; backward: also take grad_output (), "
                     "return the logits' gradient)",
                     make_focal_loss);
MTPD_REGISTER_MODULE("ops.nms",
                     "torchvision.ops.nms as a module: forward(boxes (N, 4), scores (N)) -> kept indices by "
                     "decreasing score (options: iou_threshold)",
                     [](const Json& o) { return make_nms(o, false); });
MTPD_REGISTER_MODULE("ops.batched_nms",
                     "torchvision.ops.batched_nms as a module: forward(boxes (N, 4), scores (N), idxs (N)) -> kept "
                     "indices by decreasing score (options: iou_threshold)",
                     [](const Json& o) { return make_nms(o, true); });
MTPD_REGISTER_MODULE("ops.roi_align",
                     "torchvision.ops.roi_align as a module: forward(input, rois) (options: output_size, "
                     "spatial_scale, sampling_ratio, aligned; backward: also take grad_output, return grad_input)",
                     make_roi_align);
MTPD_REGISTER_MODULE("ops.MultiScaleRoIAlign",
                     "torchvision.ops.MultiScaleRoIAlign as a module: forward(maps..., rois (K, 5), image_sizes "
                     "(N, 2)) (options: levels, output_size, sampling_ratio, aligned, backward)",
                     make_multi_scale);

}  // namespace mtpd
