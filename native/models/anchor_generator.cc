#include "models/anchor_generator.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.h"

namespace mtpd {

AnchorGenerator::AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<std::vector<double>> ratios,
                                 bool round)
    : sizes_(std::move(sizes)), ratios_(std::move(ratios)) {
  MTPD_CHECK_ARG(!sizes_.empty() && sizes_.size() == ratios_.size(),
                 "AnchorGenerator: sizes and aspect_ratios need one entry per level (got ", sizes_.size(), " and ",
                 ratios_.size(), ")");
  for (size_t l = 0; l < sizes_.size(); ++l) {
    MTPD_CHECK_ARG(!sizes_[l].empty() && !ratios_[l].empty(), "AnchorGenerator: level ", l, " has no sizes or ratios");
    // generate_anchors(): in float32, h_ratios = sqrt(r), w_ratios = 1 / h_ratios,
    // ws = (w_ratios[:, None] * scales[None, :]).view(-1), anchors = round([-ws, -hs, ws, hs] / 2).
    at::Tensor scales = at::tensor(sizes_[l], at::kDouble).to(at::kFloat);
    at::Tensor ar = at::tensor(ratios_[l], at::kDouble).to(at::kFloat);
    at::Tensor h_ratios = at::sqrt(ar);
    at::Tensor w_ratios = 1 / h_ratios;
    at::Tensor ws = (w_ratios.unsqueeze(1) * scales.unsqueeze(0)).view(-1);
    at::Tensor hs = (h_ratios.unsqueeze(1) * scales.unsqueeze(0)).view(-1);
    at::Tensor base = at::stack({-ws, -hs, ws, hs}, 1) / 2;
    // mmdetection (center_offset 0): [-0.5 ws, -0.5 hs, 0.5 ws, 0.5 hs], not rounded
    cell_anchors_.push_back(round ? base.round() : base);
  }
}

AnchorGenerator AnchorGenerator::retinanet_default() {
  std::vector<std::vector<double>> sizes, ratios;
  for (double x : {32.0, 64.0, 128.0, 256.0, 512.0}) {
    sizes.push_back({x, std::floor(x * std::pow(2.0, 1.0 / 3)), std::floor(x * std::pow(2.0, 2.0 / 3))});
    ratios.push_back({0.5, 1.0, 2.0});
  }
  return AnchorGenerator(sizes, ratios);
}

std::vector<int64_t> AnchorGenerator::num_anchors_per_location() const {
  std::vector<int64_t> out;
  for (size_t l = 0; l < sizes_.size(); ++l) out.push_back(static_cast<int64_t>(sizes_[l].size() * ratios_[l].size()));
  return out;
}

at::Tensor AnchorGenerator::anchors(const std::vector<std::array<int64_t, 2>>& grid_sizes,
                                    std::array<int64_t, 2> image_size, at::ScalarType dtype,
                                    c10::Device device, const std::vector<int64_t>& strides) const {
  MTPD_CHECK_SHAPE(grid_sizes.size() == cell_anchors_.size(), "AnchorGenerator: ", grid_sizes.size(),
                   " feature maps but anchors for ", cell_anchors_.size(), " levels");
  MTPD_CHECK_SHAPE(strides.empty() || strides.size() == grid_sizes.size(), "AnchorGenerator: ", strides.size(),
                   " strides for ", grid_sizes.size(), " feature maps");
  std::vector<int64_t> key_sizes{image_size[0], image_size[1]};
  for (auto s : strides) key_sizes.push_back(-s);
  for (const auto& g : grid_sizes) {
    key_sizes.push_back(g[0]);
    key_sizes.push_back(g[1]);
  }
  auto key = std::make_tuple(key_sizes, static_cast<int>(dtype), device.str());
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  std::vector<at::Tensor> per_level;
  for (size_t l = 0; l < grid_sizes.size(); ++l) {
    const int64_t gh = grid_sizes[l][0], gw = grid_sizes[l][1];
    const int64_t sh = strides.empty() ? image_size[0] / gh : strides[l];
    const int64_t sw = strides.empty() ? image_size[1] / gw : strides[l];
    // shifts in int32 as torchvision (exact integers), then + float cell anchors.
    at::Tensor shifts_x = at::arange(gw, at::kInt) * sw;
    at::Tensor shifts_y = at::arange(gh, at::kInt) * sh;
    auto mesh = at::meshgrid({shifts_y, shifts_x}, "ij");
    at::Tensor sx = mesh[1].reshape(-1), sy = mesh[0].reshape(-1);
    at::Tensor shifts = at::stack({sx, sy, sx, sy}, 1);
    per_level.push_back((shifts.view({-1, 1, 4}) + cell_anchors_[l].view({1, -1, 4})).reshape({-1, 4}));
  }
  at::Tensor all = at::cat(per_level, 0).to(device, dtype);
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() > 64) cache_.clear();
  cache_[key] = all;
  return all;
}

}  // namespace mtpd
