// torchvision.ops.Conv2dNormActivation: Sequential(Conv2d, [norm], [ReLU]) with torchvision's
// names: the convolution is "0", the norm "1"; the convolution has a bias iff there is no norm.
// norm: "none", "bn" (torch.nn.BatchNorm2d, synchronizable: sync_batch_norm.h) or "frozen_bn".
// The norm is folded into the convolution where it is an affine map (conv_norm.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <string>

#include "models/frozen_batch_norm.h"

namespace mtpd {

struct ConvNormActOptions {
  int64_t in_channels = 0, out_channels = 0;
  int64_t kernel_size = 3, stride = 1;
  int64_t padding = -1;  // < 0: (kernel_size - 1) / 2 * dilation, as torchvision
  int64_t dilation = 1;
  std::string norm = "none";
  bool relu = true;
};

class Conv2dNormActivationImpl : public torch::nn::Module {
 public:
  explicit Conv2dNormActivationImpl(const ConvNormActOptions& options);
  // (N, C_in, H, W) -> (N, C_out, H', W')
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d conv{nullptr};
  NormLayer norm;  // norm.module is null for "none"

 private:
  bool relu_;
};
TORCH_MODULE(Conv2dNormActivation);

}  // namespace mtpd
