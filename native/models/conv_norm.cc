#include "models/conv_norm.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <variant>

namespace mtpd {

bool fold_norm_enabled() {
  const char* v = std::getenv("MTPD_FOLD_NORM");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

namespace {

// libtorch's option variants: c10::variant up to 2.0, std::variant from 2.1.
#if TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 1)
using c10::get_if;
using c10::holds_alternative;
#else
using std::get_if;
using std::holds_alternative;
#endif

// The affine map of a norm layer that is one: (scale, shift), each (C), or undefined tensors.
std::pair<at::Tensor, at::Tensor> affine_of(const NormLayer& norm) {
  if (auto* f = norm.module->as<FrozenBatchNorm2dImpl>()) {
    // torchvision's FrozenBatchNorm2d op order: scale = w * rsqrt(rv + eps); shift = b - rm * scale.
    at::Tensor scale = f->weight * (f->running_var + f->eps).rsqrt();
    return {scale, f->bias - f->running_mean * scale};
  }
  if (auto* bn = norm.module->as<torch::nn::BatchNorm2dImpl>()) {
    const auto& o = bn->options;
    if (bn->is_training() || !o.track_running_stats() || !bn->running_mean.defined()) return {};
    at::Tensor scale = (bn->running_var + o.eps()).rsqrt();
    if (o.affine()) scale = bn->weight * scale;
    at::Tensor shift = -bn->running_mean * scale;
    if (o.affine()) shift = bn->bias + shift;
    return {scale, shift};
  }
  return {};
}

}  // namespace

at::Tensor conv_norm(torch::nn::Conv2d& conv, const NormLayer& norm, const at::Tensor& x) {
  const auto& o = conv->options;
  const auto* padding = get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!fold_norm_enabled() || conv->bias.defined() || padding == nullptr ||
      !holds_alternative<torch::enumtype::kZeros>(o.padding_mode()))
    return norm(conv->forward(x));
  // A weight that is being trained keeps torchvision's op order: the folded weight W * s would be
  // one more weight-sized tensor saved for the backward pass per convolution (42 MB of peak memory
  // in a ResNet-18 RetinaNet train step), and folding saves little there.
  if (at::GradMode::is_enabled() && conv->weight.requires_grad()) return norm(conv->forward(x));
  auto [scale, shift] = affine_of(norm);
  if (!scale.defined()) return norm(conv->forward(x));
  // W (C_out, C_in / groups, kh, kw) * s (C_out, 1, 1, 1); t (C_out) as the convolution's bias.
  at::Tensor w = conv->weight * scale.reshape({-1, 1, 1, 1}).to(conv->weight.scalar_type());
  return at::conv2d(x, w, shift.to(w.scalar_type()), o.stride(), *padding, o.dilation(), o.groups());
}

}  // namespace mtpd
