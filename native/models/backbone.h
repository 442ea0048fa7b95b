// torchvision's BackboneWithFPN: `body` (a ResNet cut after layer4, or Swin's `features`)
// returning the maps of the chosen stages, and `fpn` on top. Names: backbone.body.*,
// backbone.fpn.*.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"
#include "models/fpn.h"

namespace mtpd {

struct BackboneOptions {
  std::string name = "resnet50";      // resnet*/resnext*/wide_resnet* or swin_t/swin_s/swin_b
  double width_mult = 1.0;
  std::string norm_layer = "frozen_bn";
  int64_t trainable_layers = 3;       // 0..5 (ResNet stages; Swin: stages from the top)
  std::vector<int64_t> returned_layers{2, 3, 4};
  int64_t fpn_channels = 256;         // before width_mult
  std::string fpn_norm = "none";      // "none" or "bn" (the _v2 two-stage builders' FPN)
  std::string extra_blocks = "p5";    // "p5" (v1: LastLevelP6P7(256,256)), "c5" (v2), "c5_norelu" (mmdetection's on_input), "none"
  // ResNet overrides (0 / empty: the architecture's own)
  int64_t groups = 0, width_per_group = 0;
  std::vector<int64_t> layers;
  // Swin
  double stochastic_depth_prob = -1;  // < 0: the architecture's default (0.2 / 0.3 / 0.5)
  // "mmdet": mmdetection's SwinTransformer (a LayerNorm per returned stage, norm{i}; windows
  // shifted even where the map fits one window), see swin.h
  std::string swin_style = "torchvision";
};

class BackboneWithFPNImpl : public torch::nn::Module {
 public:
  explicit BackboneWithFPNImpl(const BackboneOptions& options);
  std::vector<at::Tensor> forward(const at::Tensor& x);
  int64_t out_channels() const { return fpn_->out_channels(); }
  // Level numbers of the outputs (3, 4, 5, 6, 7 for returned_layers {2,3,4} + P6P7).
  const std::vector<int64_t>& levels() const { return levels_; }
  const BackboneOptions& options() const { return options_; }

 private:
  BackboneOptions options_;
  std::shared_ptr<torch::nn::Module> body_;
  std::function<std::vector<at::Tensor>(const at::Tensor&)> body_forward_;  // stages 1..4
  FeaturePyramidNetwork fpn_{nullptr};
  std::vector<int64_t> levels_;
};
TORCH_MODULE(BackboneWithFPN);

bool is_known_backbone(const std::string& name);
std::vector<std::string> known_backbones();

// The backbone options every detector reads (backbone, width_mult, trainable_layers or
// trainable_backbone_layers, norm_layer, returned_layers, fpn_channels, groups, width_per_group,
// layers, stochastic_depth_prob) over `defaults`; errors start with `what` (the detector) and name
// the option. Detector-specific keys (extra_blocks, fpn_norm, swin_style) are the caller's.
BackboneOptions backbone_options_from_json(const Json& o, const std::string& what, BackboneOptions defaults = {});

}  // namespace mtpd
