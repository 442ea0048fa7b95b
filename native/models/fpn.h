// torchvision.ops.FeaturePyramidNetwork with RetinaNet's LastLevelP6P7 extra block. Names as
// torchvision 0.14: inner_blocks.{i}.0 (1x1 lateral convs), layer_blocks.{i}.0 (3x3 output
// convs), extra_blocks.p6 / extra_blocks.p7. With norm "bn" (torchvision's _v2 two-stage
// builders: norm_layer=nn.BatchNorm2d) every lateral and output conv is Conv2dNormActivation(conv
// without bias, BatchNorm2d): names inner_blocks.{i}.{0,1}, layer_blocks.{i}.{0,1}.
//
// LastLevelP6P7(in, out): P6 = conv3x3/2(P5 if in == out else C5); P7 = conv3x3/2(relu(P6)).
// torchvision's retinanet_resnet50_fpn (v1) builds LastLevelP6P7(256, 256), so P6 comes from
// P5; retinanet_resnet50_fpn_v2 builds LastLevelP6P7(2048, 256), so P6 comes from C5. relu = false:
// P7 = conv3x3/2(P6): mmdetection's FPN with add_extra_convs="on_input" and
// relu_before_extra_convs=False (its RetinaNet configs).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <string>
#include <vector>

#include "models/conv_norm_activation.h"

namespace mtpd {

class LastLevelP6P7Impl : public torch::nn::Module {
 public:
  LastLevelP6P7Impl(int64_t in_channels, int64_t out_channels, bool relu = true);
  // p: FPN outputs, c: backbone inputs; appends P6, P7 to p.
  void forward(std::vector<at::Tensor>& p, const std::vector<at::Tensor>& c);
  bool use_p5() const { return use_p5_; }

 private:
  torch::nn::Conv2d p6{nullptr}, p7{nullptr};
  bool use_p5_;
  bool relu_;
};
TORCH_MODULE(LastLevelP6P7);

class FeaturePyramidNetworkImpl : public torch::nn::Module {
 public:
  // extra_in_channels: 0 for no extra block, else LastLevelP6P7(extra_in_channels, out_channels).
  // norm: "none" (torchvision's default) or "bn".
  FeaturePyramidNetworkImpl(std::vector<int64_t> in_channels_list, int64_t out_channels,
                            int64_t extra_in_channels, bool extra_relu = true, const std::string& norm = "none");
  // x: backbone maps, finest first. Returns FPN maps finest first (+ P6, P7).
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& x);
  int64_t out_channels() const { return out_channels_; }
  size_t num_outputs() const { return inner_.size() + (extra_ ? 2 : 0); }

 private:
  std::vector<Conv2dNormActivation> inner_, layer_;
  LastLevelP6P7 extra_{nullptr};
  int64_t out_channels_;
};
TORCH_MODULE(FeaturePyramidNetwork);

}  // namespace mtpd
