// torchvision.models.detection._utils.BalancedPositiveNegativeSampler: per image, at most
// batch_size_per_image * positive_fraction random positives (label >= 1) and the rest of the
// batch random negatives (label == 0); label -1 is ignored. Draws with torch.randperm on the
// labels' device, in torchvision's order (per image: positives, then negatives), so a seeded
// CPU run samples exactly what torchvision samples.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

namespace mtpd {

class BalancedPositiveNegativeSampler {
 public:
  BalancedPositiveNegativeSampler(int64_t batch_size_per_image, double positive_fraction);
  // labels: per image (M_i) int/float; returns per image (positive mask, negative mask), (M_i) bool.
  std::vector<std::pair<at::Tensor, at::Tensor>> operator()(const std::vector<at::Tensor>& labels) const;

 private:
  int64_t batch_size_;
  double positive_fraction_;
};

}  // namespace mtpd
