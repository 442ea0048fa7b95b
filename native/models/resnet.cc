#include "models/resnet.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <map>

#include "core/errors.h"
#include "models/width.h"
#include "models/conv_norm.h"

namespace mtpd {

namespace {
const std::map<std::string, ResNetOptions>& arch_table() {
  static const std::map<std::string, ResNetOptions> t = [] {
    std::map<std::string, ResNetOptions> m;
    auto add = [&](const std::string& name, const std::string& block, std::vector<int64_t> layers, int64_t groups,
                   int64_t wpg) {
      ResNetOptions o;
      o.block = block;
      o.layers = std::move(layers);
      o.groups = groups;
      o.width_per_group = wpg;
      m[name] = o;
    };
    add("resnet18", "basic", {2, 2, 2, 2}, 1, 64);
    add("resnet34", "basic", {3, 4, 6, 3}, 1, 64);
    add("resnet50", "bottleneck", {3, 4, 6, 3}, 1, 64);
    add("resnet101", "bottleneck", {3, 4, 23, 3}, 1, 64);
    add("resnet152", "bottleneck", {3, 8, 36, 3}, 1, 64);
    add("resnext50_32x4d", "bottleneck", {3, 4, 6, 3}, 32, 4);
    add("resnext101_32x8d", "bottleneck", {3, 4, 23, 3}, 32, 8);
    add("resnext101_64x4d", "bottleneck", {3, 4, 23, 3}, 64, 4);
    add("wide_resnet50_2", "bottleneck", {3, 4, 6, 3}, 1, 128);
    add("wide_resnet101_2", "bottleneck", {3, 4, 23, 3}, 1, 128);
    return m;
  }();
  return t;
}

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, int64_t groups = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).groups(groups).bias(false));
}

}  // namespace

std::vector<std::string> ResNetOptions::known() {
  std::vector<std::string> out;
  for (const auto& [k, v] : arch_table()) out.push_back(k);
  return out;
}

bool ResNetOptions::is_known(const std::string& arch) { return arch_table().count(arch) > 0; }

ResNetOptions ResNetOptions::named(const std::string& arch) {
  auto it = arch_table().find(arch);
  if (it == arch_table().end()) {
    std::string list;
    for (const auto& k : known()) list += (list.empty() ? "" : ", ") + k;
    throw ArgumentError(fmt("unknown ResNet backbone \"", arch, "\" (known: ", list, ")"));
  }
  return it->second;
}

ResNetBlockImpl::ResNetBlockImpl(bool bottleneck, int64_t inplanes, int64_t planes, int64_t stride, bool ds,
                                 int64_t groups, int64_t base_width, const std::string& norm)
    : bottleneck_(bottleneck) {
  const int64_t exp = expansion(bottleneck);
  if (bottleneck) {
    // width = int(planes * (base_width / 64.)) * groups, as torchvision.
    const int64_t width = static_cast<int64_t>(planes * (base_width / 64.0)) * groups;
    MTPD_CHECK_ARG(width > 0, "ResNet: bottleneck width is 0 (planes ", planes, ", width_per_group ", base_width,
                   "); raise width_mult or width_per_group");
    conv1 = register_module("conv1", conv(inplanes, width, 1, 1, 0));
    bn1 = register_norm(*this, "bn1", norm, width);
    conv2 = register_module("conv2", conv(width, width, 3, stride, 1, groups));
    bn2 = register_norm(*this, "bn2", norm, width);
    conv3 = register_module("conv3", conv(width, planes * exp, 1, 1, 0));
    bn3 = register_norm(*this, "bn3", norm, planes * exp);
  } else {
    MTPD_CHECK_ARG(groups == 1 && base_width == 64, "ResNet: BasicBlock only supports groups=1 and width_per_group=64");
    conv1 = register_module("conv1", conv(inplanes, planes, 3, stride, 1));
    bn1 = register_norm(*this, "bn1", norm, planes);
    conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
    bn2 = register_norm(*this, "bn2", norm, planes);
  }
  if (ds) {
    downsample = torch::nn::ModuleList();
    downsample_conv = conv(inplanes, planes * exp, 1, stride, 0);
    downsample->push_back(downsample_conv);
    downsample_norm = make_norm2d(norm, planes * exp);
    downsample->push_back(downsample_norm.module);
    register_module("downsample", downsample);
  }
}

at::Tensor ResNetBlockImpl::forward(const at::Tensor& x) {
  // conv_norm folds frozen (and eval-mode) norms into the convolutions.
  at::Tensor out = conv_norm(conv1, bn1, x).relu_();
  if (bottleneck_) {
    out = conv_norm(conv2, bn2, out).relu_();
    out = conv_norm(conv3, bn3, out);
  } else {
    out = conv_norm(conv2, bn2, out);
  }
  at::Tensor identity = downsample ? conv_norm(downsample_conv, downsample_norm, x) : x;
  return (out += identity).relu_();
}

ResNetBodyImpl::ResNetBodyImpl(const ResNetOptions& o) : options_(o) {
  MTPD_CHECK_ARG(o.block == "basic" || o.block == "bottleneck", "ResNet: block must be basic or bottleneck, got \"",
                 o.block, "\"");
  MTPD_CHECK_ARG(o.layers.size() == 4, "ResNet: layers needs 4 entries, got ", o.layers.size());
  for (size_t i = 0; i < 4; ++i) MTPD_CHECK_ARG(o.layers[i] >= 1, "ResNet: layers[", i, "] must be >= 1");
  MTPD_CHECK_ARG(o.width_mult > 0 && o.width_mult <= 8, "ResNet: width_mult must be in (0, 8], got ", o.width_mult);
  MTPD_CHECK_ARG(o.groups >= 1 && o.width_per_group >= 1, "ResNet: groups and width_per_group must be >= 1");
  const bool bottleneck = o.block == "bottleneck";
  const int64_t exp = ResNetBlockImpl::expansion(bottleneck);
  int64_t inplanes = scaled_width(64, o.width_mult);
  conv1 = register_module("conv1", conv(3, inplanes, 7, 2, 3));
  bn1 = register_norm(*this, "bn1", o.norm_layer, inplanes);
  const int64_t base[4] = {64, 128, 256, 512};
  for (int s = 0; s < 4; ++s) {
    const int64_t planes = scaled_width(base[s], o.width_mult);
    const int64_t stride = s == 0 ? 1 : 2;
    torch::nn::ModuleList list;
    std::vector<ResNetBlock> blocks;
    for (int64_t b = 0; b < o.layers[s]; ++b) {
      const bool ds = b == 0 && (stride != 1 || inplanes != planes * exp);
      blocks.emplace_back(bottleneck, inplanes, planes, b == 0 ? stride : 1, ds, o.groups, o.width_per_group,
                          o.norm_layer);
      list->push_back(blocks.back());
      inplanes = planes * exp;
    }
    register_module("layer" + std::to_string(s + 1), list);
    stages_.push_back(std::move(blocks));
    out_channels_.push_back(inplanes);
  }
  // torchvision's init: kaiming_normal_(fan_out, relu) for convs; norms start at identity.
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

std::vector<at::Tensor> ResNetBodyImpl::forward(const at::Tensor& x) {
  at::Tensor y = conv_norm(conv1, bn1, x).relu_();
  y = at::max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
  std::vector<at::Tensor> outs;
  for (auto& stage : stages_) {
    for (auto& block : stage) y = block->forward(y);
    outs.push_back(y);
  }
  return outs;
}

void ResNetBodyImpl::set_trainable_layers(int64_t n) {
  MTPD_CHECK_ARG(n >= 0 && n <= 5, "trainable_layers must be in 0..5, got ", n);
  std::vector<std::string> train = {"layer4", "layer3", "layer2", "layer1", "conv1"};
  train.resize(static_cast<size_t>(n));
  if (n == 5) train.push_back("bn1");
  for (auto& p : named_parameters(/*recurse=*/true)) {
    bool keep = false;
    for (const auto& prefix : train)
      if (p.key().compare(0, prefix.size(), prefix) == 0) keep = true;
    p.value().set_requires_grad(keep);
  }
}

}  // namespace mtpd
