#include "models/fpn.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/modulelist.h>

#include "core/errors.h"

namespace mtpd {

namespace {
// torchvision: kaiming_uniform_(a=1), bias 0.
torch::nn::Conv2d fpn_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  torch::nn::Conv2d c(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(true));
  torch::nn::init::kaiming_uniform_(c->weight, 1.0);
  torch::nn::init::constant_(c->bias, 0.0);
  return c;
}
}  // namespace

LastLevelP6P7Impl::LastLevelP6P7Impl(int64_t in_channels, int64_t out_channels, bool relu)
    : use_p5_(in_channels == out_channels), relu_(relu) {
  p6 = register_module("p6", fpn_conv(in_channels, out_channels, 3, 2, 1));
  p7 = register_module("p7", fpn_conv(out_channels, out_channels, 3, 2, 1));
}

void LastLevelP6P7Impl::forward(std::vector<at::Tensor>& p, const std::vector<at::Tensor>& c) {
  const at::Tensor& x = use_p5_ ? p.back() : c.back();
  at::Tensor y6 = p6->forward(x);
  at::Tensor y7 = p7->forward(relu_ ? at::relu(y6) : y6);
  p.push_back(y6);
  p.push_back(y7);
}

namespace {
// Conv2dNormActivation(in, out, k, padding=(k-1)/2, norm_layer, activation_layer=None), FPN's init
Conv2dNormActivation fpn_block(int64_t in, int64_t out, int64_t k, const std::string& norm) {
  ConvNormActOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_size = k;
  o.norm = norm;
  o.relu = false;
  Conv2dNormActivation b(o);
  torch::nn::init::kaiming_uniform_(b->conv->weight, 1.0);
  if (b->conv->bias.defined()) torch::nn::init::constant_(b->conv->bias, 0.0);
  return b;
}
}  // namespace

FeaturePyramidNetworkImpl::FeaturePyramidNetworkImpl(std::vector<int64_t> in_channels_list, int64_t out_channels,
                                                     int64_t extra_in_channels, bool extra_relu,
                                                     const std::string& norm)
    : out_channels_(out_channels) {
  MTPD_CHECK_ARG(!in_channels_list.empty(), "FeaturePyramidNetwork: in_channels_list is empty");
  MTPD_CHECK_ARG(out_channels > 0, "FeaturePyramidNetwork: out_channels must be positive");
  torch::nn::ModuleList inner, layer;
  for (int64_t in : in_channels_list) {
    MTPD_CHECK_ARG(in > 0, "FeaturePyramidNetwork: in_channels=", in, " is not supported");
    // Conv2dNormActivation(norm_layer=None, activation_layer=None) == Sequential(conv): names "i.0";
    // with a norm "i.0" (no bias) and "i.1".
    inner_.push_back(fpn_block(in, out_channels, 1, norm));
    layer_.push_back(fpn_block(out_channels, out_channels, 3, norm));
    inner->push_back(inner_.back());
    layer->push_back(layer_.back());
  }
  register_module("inner_blocks", inner);
  register_module("layer_blocks", layer);
  if (extra_in_channels > 0) extra_ = register_module("extra_blocks", LastLevelP6P7(extra_in_channels, out_channels, extra_relu));
}

std::vector<at::Tensor> FeaturePyramidNetworkImpl::forward(const std::vector<at::Tensor>& x) {
  MTPD_CHECK_SHAPE(x.size() == inner_.size(), "FeaturePyramidNetwork: expected ", inner_.size(), " maps, got ",
                   x.size());
  const size_t n = x.size();
  std::vector<at::Tensor> results(n);
  at::Tensor last_inner = inner_[n - 1]->forward(x[n - 1]);
  results[n - 1] = layer_[n - 1]->forward(last_inner);
  for (int64_t i = static_cast<int64_t>(n) - 2; i >= 0; --i) {
    at::Tensor lateral = inner_[i]->forward(x[i]);
    // F.interpolate(mode="nearest", size=lateral's H, W)
    at::Tensor top_down = at::upsample_nearest2d(last_inner, {lateral.size(-2), lateral.size(-1)});
    last_inner = lateral + top_down;
    results[i] = layer_[i]->forward(last_inner);
  }
  if (extra_) extra_->forward(results, x);
  return results;
}

}  // namespace mtpd
