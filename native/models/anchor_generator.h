// torchvision.models.detection.anchor_utils.AnchorGenerator: per feature level, sizes x
// aspect ratios zero-centred cell anchors (rounded), tiled over the level's grid with stride
// image_size // grid_size. Anchors of a level are ordered (y, x, anchor), anchor = ratio-major,
// size-minor, as torchvision. No parameters or buffers (nothing in the state dict).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace mtpd {

class AnchorGenerator {
 public:
  // round = false: mmdetection's unrounded cell anchors
  AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<std::vector<double>> aspect_ratios,
                  bool round = true);
  // RetinaNet's default: sizes (x, int(x 2^(1/3)), int(x 2^(2/3))) for x in 32..512, ratios (0.5, 1, 2).
  static AnchorGenerator retinanet_default();

  // One (sum_l H_l W_l A, 4) tensor, the same for every image of the batch.
  // grid_sizes: (H_l, W_l) per level; image_size: padded batch (H, W).
  // strides: one per level (mmdetection's fixed strides, 8..128); empty: torchvision's
  // image_size // grid_size (which differs from 2^level where the padded size is not a
  // multiple of the level's stride).
  at::Tensor anchors(const std::vector<std::array<int64_t, 2>>& grid_sizes, std::array<int64_t, 2> image_size,
                     at::ScalarType dtype, c10::Device device, const std::vector<int64_t>& strides = {}) const;
  std::vector<int64_t> num_anchors_per_location() const;
  const std::vector<std::vector<double>>& sizes() const { return sizes_; }
  const std::vector<std::vector<double>>& aspect_ratios() const { return ratios_; }

 private:
  std::vector<std::vector<double>> sizes_, ratios_;
  std::vector<at::Tensor> cell_anchors_;  // float32 CPU (A_l, 4)
  // Cache: the same grid and image size recur every step.
  mutable std::mutex mu_;
  mutable std::map<std::tuple<std::vector<int64_t>, int, std::string>, at::Tensor> cache_;
};

}  // namespace mtpd
