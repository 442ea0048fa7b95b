// torchvision.models.detection.transform.GeneralizedRCNNTransform: normalize with the image
// mean/std, resize so the short side is min_size unless the long side would exceed max_size
// (bilinear, align_corners=false, recompute_scale_factor=True: the output size is
// floor(size * scale) and the kernel uses the ratio of sizes), zero-pad the batch to a multiple
// of size_divisible; targets are resized with their images and detections mapped back.
//
// resize_style "mmdet": mmdetection 2.x's test pipeline (Resize keep_ratio with img_scale
// (max_size, min_size): mmcv.rescale_size, scale = min(max_size / long side, min_size / short
// side) in double, new side = int(side * scale + 0.5); scale_factor = new / old per axis in
// float32, boxes divided by it to go back). The pixels are still resampled by torch's bilinear
// kernel (mmdetection resizes uint8 images with OpenCV's).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <string>
#include <vector>

#include "core/registry.h"
#include "models/detector.h"

namespace mtpd {

struct TransformOptions {
  std::vector<int64_t> min_size{800};  // training picks one at random (torch RNG); eval uses the last
  int64_t max_size = 1333;
  std::array<double, 3> image_mean{0.485, 0.456, 0.406};
  std::array<double, 3> image_std{0.229, 0.224, 0.225};
  int64_t size_divisible = 32;
  std::string resize_style = "torchvision";  // or "mmdet"
};

// min_size, max_size, image_mean, image_std (3 numbers each) and size_divisible over `defaults`;
// errors start with `what` (the detector) and name the option. resize_style is the caller's.
TransformOptions transform_options_from_json(const Json& o, const std::string& what, TransformOptions defaults = {});

class GeneralizedRCNNTransform {
 public:
  explicit GeneralizedRCNNTransform(TransformOptions options);
  // images: (3, H, W) floating 0..1, already on the target device.
  ImageBatch operator()(const std::vector<at::Tensor>& images, const std::vector<Target>* targets,
                        bool training) const;
  // Boxes from resized-image pixels back to original-image pixels (in place on `dets`).
  void postprocess(std::vector<Detection>& dets, const std::vector<ImageSize>& image_sizes,
                   const std::vector<ImageSize>& original_sizes) const;
  const TransformOptions& options() const { return options_; }

  // The output size torchvision's resize gives an (h, w) image.
  ImageSize resized_size(int64_t h, int64_t w, double min_size) const;
  static at::Tensor resize_boxes(const at::Tensor& boxes, ImageSize from, ImageSize to);
  // Boxes from resized pixels `from` back to the original `to`, as the style does it
  // (torchvision: times the float32 ratio to/from; mmdet: divided by mmdet's float32 scale_factor).
  at::Tensor unresize_boxes(const at::Tensor& boxes, ImageSize from, ImageSize to) const;

 private:
  TransformOptions options_;
};

}  // namespace mtpd
