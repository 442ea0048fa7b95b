#include "models/frozen_batch_norm.h"

#include <torch/nn/modules/batchnorm.h>

#include "core/errors.h"
#include "models/sync_batch_norm.h"

namespace mtpd {

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t num_features_, double eps_)
    : num_features(num_features_), eps(eps_) {
  MTPD_CHECK_ARG(num_features > 0, "FrozenBatchNorm2d: num_features must be positive, got ", num_features);
  reset();
}

void FrozenBatchNorm2dImpl::reset() {
  weight = register_buffer("weight", at::ones({num_features}));
  bias = register_buffer("bias", at::zeros({num_features}));
  running_mean = register_buffer("running_mean", at::zeros({num_features}));
  running_var = register_buffer("running_var", at::ones({num_features}));
}

at::Tensor FrozenBatchNorm2dImpl::forward(const at::Tensor& x) {
  // Same op order as torchvision: scale = w * rsqrt(rv + eps); bias = b - rm * scale.
  auto w = weight.reshape({1, -1, 1, 1});
  auto b = bias.reshape({1, -1, 1, 1});
  auto rv = running_var.reshape({1, -1, 1, 1});
  auto rm = running_mean.reshape({1, -1, 1, 1});
  auto scale = w * (rv + eps).rsqrt();
  auto shift = b - rm * scale;
  return x * scale + shift;
}

NormLayer make_norm2d(const std::string& kind, int64_t num_features) {
  if (kind == "frozen_bn") {
    FrozenBatchNorm2d m(num_features);
    return {m.ptr(), [m](const at::Tensor& x) mutable { return m->forward(x); }};
  }
  if (kind == "bn") {
    // torch.nn.BatchNorm2d, which can be synchronized over a data-parallel job (sync_batch_norm.h).
    auto m = make_sync_batch_norm2d(torch::nn::BatchNorm2dOptions(num_features).eps(1e-5).momentum(0.1));
    return {m.module, m.forward};
  }
  throw ArgumentError(fmt("unknown norm_layer \"", kind, "\" (known: frozen_bn, bn)"));
}

NormLayer register_norm(torch::nn::Module& parent, const std::string& name, const std::string& kind,
                        int64_t num_features) {
  NormLayer n = make_norm2d(kind, num_features);
  parent.register_module(name, n.module);
  return n;
}

}  // namespace mtpd
