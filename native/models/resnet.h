// torchvision.models.resnet: ResNet-18/34/50/101/152, ResNeXt-50 32x4d, ResNeXt-101 32x8d /
// 64x4d, Wide ResNet-50/101-2, as the body of a detection backbone (conv1, bn1, layer1..4; no
// avgpool/fc, as torchvision's IntermediateLayerGetter keeps them). Submodule names are
// torchvision's ("layer2.0.downsample.1.running_var"), so its checkpoints load by name.
//
// width_mult scales every width (stem 64, planes 64/128/256/512) and keeps all names: a narrow
// but real ResNet for CPU tests and demos. trainable_layers freezes as torchvision's
// _resnet_fpn_extractor: the first 5 - n of (conv1+bn1, layer1, layer2, layer3, layer4).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>

#include <string>
#include <vector>

#include "core/registry.h"
#include "models/frozen_batch_norm.h"

namespace mtpd {

struct ResNetOptions {
  std::string block = "bottleneck";  // "basic" | "bottleneck"
  std::vector<int64_t> layers{3, 4, 6, 3};
  int64_t groups = 1;
  int64_t width_per_group = 64;
  double width_mult = 1.0;
  std::string norm_layer = "frozen_bn";  // "frozen_bn" | "bn"

  // "resnet18", "resnet50", "resnext50_32x4d", ... (torchvision's builder names).
  static ResNetOptions named(const std::string& arch);
  static bool is_known(const std::string& arch);
  static std::vector<std::string> known();
};

class ResNetBlockImpl : public torch::nn::Module {
 public:
  ResNetBlockImpl(bool bottleneck, int64_t inplanes, int64_t planes, int64_t stride, bool downsample,
                  int64_t groups, int64_t base_width, const std::string& norm);
  at::Tensor forward(const at::Tensor& x);
  static int64_t expansion(bool bottleneck) { return bottleneck ? 4 : 1; }

 private:
  bool bottleneck_;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  NormLayer bn1, bn2, bn3;
  torch::nn::ModuleList downsample{nullptr};
  NormLayer downsample_norm;
  torch::nn::Conv2d downsample_conv{nullptr};
};
TORCH_MODULE(ResNetBlock);

class ResNetBodyImpl : public torch::nn::Module {
 public:
  explicit ResNetBodyImpl(const ResNetOptions& options);
  // Returns the outputs of layer1..layer4 (C2..C5), NCHW.
  std::vector<at::Tensor> forward(const at::Tensor& x);
  // Channels of C2..C5.
  const std::vector<int64_t>& out_channels() const { return out_channels_; }
  // torchvision's trainable_layers (0..5): freezes parameters of the other stages.
  void set_trainable_layers(int64_t n);
  // Stages to compute: up to and including layer `last` (1..4).
  const ResNetOptions& options() const { return options_; }

 private:
  ResNetOptions options_;
  torch::nn::Conv2d conv1{nullptr};
  NormLayer bn1;
  std::vector<std::vector<ResNetBlock>> stages_;
  std::vector<int64_t> out_channels_;
};
TORCH_MODULE(ResNetBody);

}  // namespace mtpd
