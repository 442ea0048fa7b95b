#include "models/backbone.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.h"
#include "models/resnet.h"
#include "models/swin.h"

namespace mtpd {

bool is_known_backbone(const std::string& name) {
  return ResNetOptions::is_known(name) || SwinOptions::is_known(name);
}

std::vector<std::string> known_backbones() {
  auto out = ResNetOptions::known();
  for (const auto& s : SwinOptions::known()) out.push_back(s);
  return out;
}

BackboneWithFPNImpl::BackboneWithFPNImpl(const BackboneOptions& o) : options_(o) {
  MTPD_CHECK_ARG(is_known_backbone(o.name), "unknown backbone \"", o.name, "\"");
  MTPD_CHECK_ARG(!o.returned_layers.empty() && o.returned_layers.size() <= 4, "returned_layers needs 1..4 entries");
  for (size_t i = 0; i < o.returned_layers.size(); ++i) {
    MTPD_CHECK_ARG(o.returned_layers[i] >= 1 && o.returned_layers[i] <= 4, "returned_layers[", i,
                   "] must be in 1..4, got ", o.returned_layers[i]);
    MTPD_CHECK_ARG(i == 0 || o.returned_layers[i] > o.returned_layers[i - 1], "returned_layers must be increasing");
  }
  MTPD_CHECK_ARG(o.extra_blocks == "p5" || o.extra_blocks == "c5" || o.extra_blocks == "c5_norelu" || o.extra_blocks == "pool" ||
                     o.extra_blocks == "none",
                 "extra_blocks must be \"p5\", \"c5\", \"c5_norelu\", \"pool\" or \"none\", got \"", o.extra_blocks, "\"");
  MTPD_CHECK_ARG(o.swin_style == "torchvision" || SwinOptions::is_known(o.name),
                 "swin_style \"", o.swin_style, "\" needs a Swin backbone, got \"", o.name, "\"");
  MTPD_CHECK_ARG(o.fpn_norm == "none" || o.fpn_norm == "bn", "fpn_norm must be \"none\" or \"bn\", got \"",
                 o.fpn_norm, "\"");
  std::vector<int64_t> stage_channels;
  if (ResNetOptions::is_known(o.name)) {
    ResNetOptions r = ResNetOptions::named(o.name);
    r.width_mult = o.width_mult;
    r.norm_layer = o.norm_layer;
    if (o.groups > 0) r.groups = o.groups;
    if (o.width_per_group > 0) r.width_per_group = o.width_per_group;
    if (!o.layers.empty()) r.layers = o.layers;
    ResNetBody body(r);
    body->set_trainable_layers(o.trainable_layers);
    stage_channels = body->out_channels();
    body_ = body.ptr();
    body_forward_ = [body](const at::Tensor& x) mutable { return body->forward(x); };
  } else {
    SwinOptions s = SwinOptions::named(o.name);
    s.width_mult = o.width_mult;
    if (o.stochastic_depth_prob >= 0) s.stochastic_depth_prob = o.stochastic_depth_prob;
    if (!o.layers.empty()) s.depths = o.layers;  // "layers" = Swin depths per stage
    if (o.swin_style == "mmdet") {
      s.always_shift = true;
      for (int64_t l : o.returned_layers) s.out_norms.push_back(l - 1);  // layer l = stage l - 1
    }
    SwinBody body(s);
    body->set_trainable_layers(o.trainable_layers);
    stage_channels = body->out_channels();
    body_ = body.ptr();
    body_forward_ = [body](const at::Tensor& x) mutable { return body->forward(x); };
  }
  register_module("body", body_);
  std::vector<int64_t> in_list;
  for (int64_t l : o.returned_layers) {
    in_list.push_back(stage_channels[static_cast<size_t>(l - 1)]);
    levels_.push_back(l + 1);
  }
  const int64_t out = std::max<int64_t>(1, static_cast<int64_t>(std::lround(o.fpn_channels * o.width_mult)));
  int64_t extra_in = 0;
  if (o.extra_blocks == "p5") extra_in = out;
  if (o.extra_blocks == "c5" || o.extra_blocks == "c5_norelu") {
    extra_in = in_list.back();
    // LastLevelP6P7 decides P5 vs C5 by in == out; a C5 with exactly `out` channels would be
    // taken as P5, as in torchvision.
  }
  if (extra_in > 0) {
    levels_.push_back(levels_.back() + 1);
    levels_.push_back(levels_.back() + 1);
  }
  if (o.extra_blocks == "pool") levels_.push_back(levels_.back() + 1);  // LastLevelMaxPool
  fpn_ = register_module("fpn", FeaturePyramidNetwork(in_list, out, extra_in, o.extra_blocks != "c5_norelu", o.fpn_norm));
}

std::vector<at::Tensor> BackboneWithFPNImpl::forward(const at::Tensor& x) {
  std::vector<at::Tensor> stages = body_forward_(x);
  std::vector<at::Tensor> picked;
  for (int64_t l : options_.returned_layers) picked.push_back(stages[static_cast<size_t>(l - 1)]);
  std::vector<at::Tensor> out = fpn_->forward(picked);
  // torchvision's LastLevelMaxPool (Faster/Mask R-CNN): "pool" = max_pool2d(P5, 1, 2, 0), no parameters
  if (options_.extra_blocks == "pool") out.push_back(at::max_pool2d(out.back(), {1, 1}, {2, 2}, {0, 0}));
  return out;
}

BackboneOptions backbone_options_from_json(const Json& o, const std::string& what, BackboneOptions b) {
  b.name = opt_string(o, "backbone", b.name);
  MTPD_CHECK_ARG(is_known_backbone(b.name), what, ": unknown backbone \"", b.name, "\" (known: ", [] {
    std::string s;
    for (const auto& k : known_backbones()) s += (s.empty() ? "" : ", ") + k;
    return s;
  }(), ")");
  b.width_mult = opt_number(o, "width_mult", b.width_mult);
  MTPD_CHECK_ARG(b.width_mult > 0, what, ": width_mult must be positive, got ", b.width_mult);
  b.trainable_layers = opt_int(o, "trainable_layers", opt_int(o, "trainable_backbone_layers", b.trainable_layers));
  MTPD_CHECK_ARG(b.trainable_layers >= 0 && b.trainable_layers <= 5, what, ": trainable_layers must be in 0..5, got ",
                 b.trainable_layers);
  b.norm_layer = opt_string(o, "norm_layer", b.norm_layer);
  MTPD_CHECK_ARG(b.norm_layer == "frozen_bn" || b.norm_layer == "bn", what,
                 ": norm_layer must be \"frozen_bn\" or \"bn\", got \"", b.norm_layer, "\"");
  b.returned_layers = opt_ints(o, "returned_layers", b.returned_layers);
  b.fpn_channels = opt_int(o, "fpn_channels", b.fpn_channels);
  MTPD_CHECK_ARG(b.fpn_channels > 0, what, ": fpn_channels must be positive, got ", b.fpn_channels);
  b.groups = opt_int(o, "groups", 0);
  b.width_per_group = opt_int(o, "width_per_group", 0);
  b.layers = opt_ints(o, "layers", {});
  b.stochastic_depth_prob = opt_number(o, "stochastic_depth_prob", -1);
  return b;
}

}  // namespace mtpd
