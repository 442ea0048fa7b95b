// torchvision.ops.FrozenBatchNorm2d: BatchNorm2d with fixed statistics and affine parameters,
// all four kept as buffers (weight, bias, running_mean, running_var). Checkpoints of a regular
// BatchNorm2d carry "num_batches_tracked" too; it is accepted and dropped, as torchvision does.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <memory>
#include <string>

#include "core/state_dict.h"

namespace mtpd {

class FrozenBatchNorm2dImpl : public torch::nn::Cloneable<FrozenBatchNorm2dImpl>, public StateDictFilter {
 public:
  explicit FrozenBatchNorm2dImpl(int64_t num_features, double eps = 1e-5);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);
  bool ignorable_key(const std::string& key) const override { return key == "num_batches_tracked"; }

  int64_t num_features;
  double eps;
  at::Tensor weight, bias, running_mean, running_var;
};
TORCH_MODULE(FrozenBatchNorm2d);

// A norm layer chosen by name, registered by the caller under torchvision's attribute name.
// kind: "frozen_bn" (FrozenBatchNorm2d) or "bn" (torch.nn.BatchNorm2d, eps 1e-5, momentum 0.1).
struct NormLayer {
  std::shared_ptr<torch::nn::Module> module;
  std::function<at::Tensor(const at::Tensor&)> forward;
  at::Tensor operator()(const at::Tensor& x) const { return forward(x); }
};
NormLayer make_norm2d(const std::string& kind, int64_t num_features);
// Registers `norm.module` on `parent` under `name` and returns it.
NormLayer register_norm(torch::nn::Module& parent, const std::string& name, const std::string& kind,
                        int64_t num_features);

}  // namespace mtpd
