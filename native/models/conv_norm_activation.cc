#include "models/conv_norm_activation.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "models/conv_norm.h"

namespace mtpd {

Conv2dNormActivationImpl::Conv2dNormActivationImpl(const ConvNormActOptions& o) : relu_(o.relu) {
  MTPD_CHECK_ARG(o.in_channels > 0 && o.out_channels > 0, "Conv2dNormActivation: channels must be positive, got ",
                 o.in_channels, " -> ", o.out_channels);
  MTPD_CHECK_ARG(o.norm == "none" || o.norm == "bn" || o.norm == "frozen_bn",
                 "Conv2dNormActivation: norm must be \"none\", \"bn\" or \"frozen_bn\", got \"", o.norm, "\"");
  const bool has_norm = o.norm != "none";
  const int64_t pad = o.padding >= 0 ? o.padding : (o.kernel_size - 1) / 2 * o.dilation;
  conv = register_module("0", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels, o.out_channels, o.kernel_size)
                                                    .stride(o.stride)
                                                    .padding(pad)
                                                    .dilation(o.dilation)
                                                    .bias(!has_norm)));
  if (has_norm) norm = register_norm(*this, "1", o.norm, o.out_channels);
}

at::Tensor Conv2dNormActivationImpl::forward(const at::Tensor& x) {
  at::Tensor y = norm.module ? conv_norm(conv, norm, x) : conv->forward(x);
  return relu_ ? y.relu_() : y;
}

}  // namespace mtpd
