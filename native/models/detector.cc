#include "models/detector.h"

#include <torch/nn/module.h>

#include "core/errors.h"

namespace mtpd {

void Detector::set_roi_scales(const std::vector<double>& scales) {
  MTPD_CHECK_ARG(scales.empty(), arch(), ": has no RoI poolers; cannot take roi scales");
}

c10::Device Detector::device() const {
  for (const auto& p : parameters(/*recurse=*/true)) return p.device();
  for (const auto& b : buffers(/*recurse=*/true)) return b.device();
  return c10::Device(c10::kCPU);
}

std::map<std::string, int64_t> Detector::feature_stride_map() const {
  const auto names = feature_names();
  const auto strides = feature_strides();
  MTPD_CHECK_SHAPE(names.size() == strides.size(), arch(), ": ", names.size(), " feature taps but ", strides.size(),
                   " strides");
  std::map<std::string, int64_t> out;
  for (size_t i = 0; i < names.size(); ++i) out[names[i]] = strides[i];
  return out;
}

std::shared_ptr<Detector> as_detector(const BuiltModule& built) {
  return std::dynamic_pointer_cast<Detector>(built.module);
}

std::shared_ptr<Detector> build_detector(const std::string& name, const Json& options) {
  auto built = build_module(name, options);
  auto det = as_detector(built);
  MTPD_CHECK_ARG(det != nullptr, "\"", name, "\" is a module but not a detector");
  return det;
}

void check_images_and_targets(const std::vector<at::Tensor>& images, const std::vector<Target>* targets,
                              const std::string& what) {
  MTPD_CHECK_ARG(!images.empty(), what, ": expected at least one image");
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor& im = images[i];
    MTPD_CHECK_ARG(im.defined(), what, ": images[", i, "] is undefined");
    MTPD_CHECK_ARG(at::isFloatingType(im.scalar_type()), what, ": expected images[", i,
                   "] to be floating point (0..1), got ", im.scalar_type());
    MTPD_CHECK_SHAPE(im.dim() == 3 && im.size(0) == 3 && im.size(1) > 0 && im.size(2) > 0, what,
                     ": expected images[", i, "] of shape (3, H, W), got ", im.sizes());
  }
  if (!targets) return;
  MTPD_CHECK_SHAPE(targets->size() == images.size(), what, ": got ", images.size(), " images but ", targets->size(),
                   " targets");
  for (size_t i = 0; i < targets->size(); ++i) {
    const Target& t = (*targets)[i];
    MTPD_CHECK_ARG(t.boxes.defined() && t.labels.defined(), what, ": targets[", i, "] needs boxes and labels");
    MTPD_CHECK_ARG(at::isFloatingType(t.boxes.scalar_type()), what, ": expected targets[", i,
                   "].boxes to be floating point, got ", t.boxes.scalar_type());
    MTPD_CHECK_ARG(at::isIntegralType(t.labels.scalar_type(), /*includeBool=*/false), what, ": expected targets[", i,
                   "].labels to be integers, got ", t.labels.scalar_type());
    MTPD_CHECK_SHAPE(t.boxes.dim() == 2 && t.boxes.size(1) == 4, what, ": expected targets[", i,
                     "].boxes of shape (K, 4), got ", t.boxes.sizes());
    MTPD_CHECK_SHAPE(t.labels.dim() == 1 && t.labels.size(0) == t.boxes.size(0), what, ": targets[", i, "] has ",
                     t.boxes.size(0), " boxes but labels of shape ", t.labels.sizes());
    if (t.masks.defined()) {
      MTPD_CHECK_SHAPE(t.masks.dim() == 3 && t.masks.size(0) == t.boxes.size(0) &&
                           t.masks.size(1) == images[i].size(1) && t.masks.size(2) == images[i].size(2),
                       what, ": expected targets[", i, "].masks of shape (", t.boxes.size(0), ", ", images[i].size(1),
                       ", ", images[i].size(2), "), got ", t.masks.sizes());
    }
    if (t.boxes.size(0) > 0) {
      auto b = t.boxes.detach().to(at::kCPU, at::kFloat);
      auto bad = (b.select(1, 2) <= b.select(1, 0)).logical_or(b.select(1, 3) <= b.select(1, 1));
      if (bad.any().item<bool>()) {
        const int64_t j = bad.nonzero().select(1, 0)[0].item<int64_t>();
        auto r = b[j];
        throw ShapeError(fmt(what, ": targets[", i, "].boxes[", j, "] = [", r[0].item<float>(), ", ",
                             r[1].item<float>(), ", ", r[2].item<float>(), ", ", r[3].item<float>(),
                             "] is degenerate (all boxes need x2 > x1 and y2 > y1)"));
      }
    }
  }
}

}  // namespace mtpd
