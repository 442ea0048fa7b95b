#include "models/swin.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>

#include <cmath>
#include <map>

#include "core/errors.h"

namespace mtpd {

namespace {
const std::map<std::string, SwinOptions>& swin_table() {
  static const std::map<std::string, SwinOptions> t = [] {
    std::map<std::string, SwinOptions> m;
    SwinOptions o;
    m["swin_t"] = o;
    o.depths = {2, 2, 18, 2};
    o.stochastic_depth_prob = 0.3;
    m["swin_s"] = o;
    o.embed_dim = 128;
    o.num_heads = {4, 8, 16, 32};
    o.stochastic_depth_prob = 0.5;
    m["swin_b"] = o;
    return m;
  }();
  return t;
}

torch::nn::LayerNorm layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5));
}

void trunc_normal_(at::Tensor w, double std) {
  at::NoGradGuard g;
  // torch.nn.init.trunc_normal_(std, a=-2, b=2) (absolute bounds, as torchvision calls it)
  w.normal_(0, std).clamp_(-2.0, 2.0);
}
}  // namespace

bool SwinOptions::is_known(const std::string& arch) { return swin_table().count(arch) > 0; }
std::vector<std::string> SwinOptions::known() { return {"swin_t", "swin_s", "swin_b"}; }
SwinOptions SwinOptions::named(const std::string& arch) {
  auto it = swin_table().find(arch);
  MTPD_CHECK_ARG(it != swin_table().end(), "unknown Swin backbone \"", arch, "\" (known: swin_t, swin_s, swin_b)");
  return it->second;
}

ShiftedWindowAttentionImpl::ShiftedWindowAttentionImpl(int64_t dim, int64_t window, int64_t shift, int64_t heads,
                                                       bool always_shift)
    : window_(window), shift_(shift), heads_(heads), always_shift_(always_shift) {
  MTPD_CHECK_ARG(heads > 0 && dim % heads == 0, "Swin: dim ", dim, " is not divisible by num_heads ", heads);
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, dim * 3).bias(true)));
  proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(true)));
  for (auto* l : {qkv.get(), proj.get()}) {
    trunc_normal_(l->weight, 0.02);
    torch::nn::init::zeros_(l->bias);
  }
  relative_position_bias_table =
      register_parameter("relative_position_bias_table", at::zeros({(2 * window - 1) * (2 * window - 1), heads}));
  trunc_normal_(relative_position_bias_table, 0.02);
  // relative_position_index: for window positions i, j: (dy + W - 1) * (2W - 1) + (dx + W - 1)
  at::Tensor coords_h = at::arange(window, at::kLong), coords_w = at::arange(window, at::kLong);
  auto mesh = at::meshgrid({coords_h, coords_w}, "ij");
  at::Tensor coords = at::stack({mesh[0], mesh[1]}).flatten(1);                      // (2, W*W)
  at::Tensor rel = (coords.unsqueeze(2) - coords.unsqueeze(1)).permute({1, 2, 0}).contiguous();  // (WW, WW, 2)
  at::Tensor r0 = (rel.select(2, 0) + (window - 1)) * (2 * window - 1);
  at::Tensor r1 = rel.select(2, 1) + (window - 1);
  relative_position_index = register_buffer("relative_position_index", (r0 + r1).flatten());
}

at::Tensor ShiftedWindowAttentionImpl::forward(const at::Tensor& input) {
  const int64_t B = input.size(0), H = input.size(1), W = input.size(2), C = input.size(3);
  const int64_t ws = window_, N = ws * ws;
  // relative position bias: table[index] -> (N, N, heads) -> (1, heads, N, N)
  at::Tensor bias = relative_position_bias_table.index_select(0, relative_position_index)
                        .view({N, N, -1})
                        .permute({2, 0, 1})
                        .contiguous()
                        .unsqueeze(0);
  const int64_t pad_r = (ws - W % ws) % ws, pad_b = (ws - H % ws) % ws;
  at::Tensor x = (pad_r || pad_b) ? at::constant_pad_nd(input, {0, 0, 0, pad_r, 0, pad_b}) : input;
  const int64_t pH = x.size(1), pW = x.size(2);
  int64_t sh = shift_, sw = shift_;
  // torchvision: no shift along an axis that one window covers; mmdetection shifts regardless
  if (!always_shift_ && ws >= pH) sh = 0;
  if (!always_shift_ && ws >= pW) sw = 0;
  const bool shifted = sh + sw > 0;
  if (shifted) x = at::roll(x, {-sh, -sw}, {1, 2});
  const int64_t nW = (pH / ws) * (pW / ws);
  // (B, pH/ws, ws, pW/ws, ws, C) -> (B*nW, ws*ws, C)
  x = x.view({B, pH / ws, ws, pW / ws, ws, C}).permute({0, 1, 3, 2, 4, 5}).reshape({B * nW, N, C});
  at::Tensor qkv_out = qkv->forward(x);
  // (B*nW, N, 3, heads, C/heads) -> (3, B*nW, heads, N, C/heads)
  qkv_out = qkv_out.reshape({x.size(0), x.size(1), 3, heads_, C / heads_}).permute({2, 0, 3, 1, 4});
  at::Tensor q = qkv_out[0], k = qkv_out[1], v = qkv_out[2];
  q = q * std::pow(static_cast<double>(C / heads_), -0.5);
  at::Tensor attn = q.matmul(k.transpose(-2, -1));
  attn = attn + bias;
  if (shifted) {
    at::Tensor mask = at::zeros({pH, pW}, x.options());
    const int64_t hs[4] = {0, pH - ws, pH - sh, pH};
    const int64_t wsl[4] = {0, pW - ws, pW - sw, pW};
    int64_t count = 0;
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        mask.slice(0, hs[a], hs[a + 1]).slice(1, wsl[b], wsl[b + 1]).fill_(static_cast<double>(count));
        ++count;
      }
    mask = mask.view({pH / ws, ws, pW / ws, ws}).permute({0, 2, 1, 3}).reshape({nW, N});
    mask = mask.unsqueeze(1) - mask.unsqueeze(2);
    mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0);
    attn = attn.view({x.size(0) / nW, nW, heads_, N, N});
    attn = attn + mask.unsqueeze(1).unsqueeze(0);
    attn = attn.view({-1, heads_, N, N});
  }
  attn = at::softmax(attn, -1);
  x = attn.matmul(v).transpose(1, 2).reshape({x.size(0), N, C});
  x = proj->forward(x);
  x = x.view({B, pH / ws, pW / ws, ws, ws, C}).permute({0, 1, 3, 2, 4, 5}).reshape({B, pH, pW, C});
  if (shifted) x = at::roll(x, {sh, sw}, {1, 2});
  return x.slice(1, 0, H).slice(2, 0, W).contiguous();
}

SwinTransformerBlockImpl::SwinTransformerBlockImpl(int64_t dim, int64_t heads, int64_t window, int64_t shift,
                                                   double mlp_ratio, double sd, bool always_shift)
    : sd_prob_(sd) {
  norm1 = register_module("norm1", layer_norm(dim));
  attn = register_module("attn", ShiftedWindowAttention(dim, window, shift, heads, always_shift));
  norm2 = register_module("norm2", layer_norm(dim));
  // MLP: Sequential(Linear, GELU, Dropout, Linear, Dropout) -> parameters mlp.0.*, mlp.3.*
  const int64_t hidden = static_cast<int64_t>(dim * mlp_ratio);
  fc1 = torch::nn::Linear(dim, hidden);
  fc2 = torch::nn::Linear(hidden, dim);
  torch::nn::Sequential mlp(fc1, torch::nn::GELU(), torch::nn::Dropout(0.0), fc2, torch::nn::Dropout(0.0));
  register_module("mlp", mlp);
  // SwinTransformer's final init pass: every Linear trunc_normal(std 0.02), bias 0.
  for (auto* l : {fc1.get(), fc2.get()}) {
    trunc_normal_(l->weight, 0.02);
    torch::nn::init::zeros_(l->bias);
  }
}

at::Tensor SwinTransformerBlockImpl::drop_path(const at::Tensor& x) {
  if (!is_training() || sd_prob_ == 0.0) return x;
  const double survival = 1.0 - sd_prob_;
  std::vector<int64_t> size(static_cast<size_t>(x.dim()), 1);
  size[0] = x.size(0);
  at::Tensor noise = at::empty(size, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

at::Tensor SwinTransformerBlockImpl::forward(const at::Tensor& x0) {
  at::Tensor x = x0 + drop_path(attn->forward(norm1->forward(x0)));
  at::Tensor h = fc2->forward(at::gelu(fc1->forward(norm2->forward(x))));
  return x + drop_path(h);
}

PatchMergingImpl::PatchMergingImpl(int64_t dim) {
  reduction = register_module("reduction", torch::nn::Linear(torch::nn::LinearOptions(4 * dim, 2 * dim).bias(false)));
  norm = register_module("norm", layer_norm(4 * dim));
  trunc_normal_(reduction->weight, 0.02);
}

at::Tensor PatchMergingImpl::forward(const at::Tensor& in) {
  const int64_t H = in.size(-3), W = in.size(-2);
  at::Tensor x = (H % 2 || W % 2) ? at::constant_pad_nd(in, {0, 0, 0, W % 2, 0, H % 2}) : in;
  at::Tensor x0 = x.slice(-3, 0, c10::nullopt, 2).slice(-2, 0, c10::nullopt, 2);
  at::Tensor x1 = x.slice(-3, 1, c10::nullopt, 2).slice(-2, 0, c10::nullopt, 2);
  at::Tensor x2 = x.slice(-3, 0, c10::nullopt, 2).slice(-2, 1, c10::nullopt, 2);
  at::Tensor x3 = x.slice(-3, 1, c10::nullopt, 2).slice(-2, 1, c10::nullopt, 2);
  x = at::cat({x0, x1, x2, x3}, -1);  // (..., H/2, W/2, 4C)
  return reduction->forward(norm->forward(x));
}

SwinBodyImpl::SwinBodyImpl(const SwinOptions& o) : options_(o) {
  MTPD_CHECK_ARG(o.width_mult > 0 && o.width_mult <= 4, "Swin: width_mult must be in (0, 4], got ", o.width_mult);
  MTPD_CHECK_ARG(o.depths.size() == 4 && o.num_heads.size() == 4, "Swin: depths and num_heads need 4 entries");
  const int64_t embed = std::max<int64_t>(1, std::lround(o.embed_dim * o.width_mult));
  std::vector<int64_t> heads;
  for (auto h : o.num_heads) heads.push_back(std::max<int64_t>(1, std::lround(h * o.width_mult)));
  // features.0 = Sequential(Conv2d, Permute, LayerNorm): parameters features.0.0.*, features.0.2.*
  patch_conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(3, embed, o.patch_size).stride(o.patch_size));
  patch_norm = layer_norm(embed);
  torch::nn::ModuleList features;
  torch::nn::ModuleList stem;
  stem->push_back(patch_conv);
  stem->push_back(torch::nn::Identity());  // Permute([0, 2, 3, 1]) has no parameters
  stem->push_back(patch_norm);
  features->push_back(stem);
  int64_t total = 0;
  for (auto d : o.depths) total += d;
  int64_t block_id = 0;
  for (int s = 0; s < 4; ++s) {
    const int64_t dim = embed << s;
    torch::nn::ModuleList stage;
    std::vector<SwinTransformerBlock> blocks;
    for (int64_t j = 0; j < o.depths[static_cast<size_t>(s)]; ++j) {
      const double sd = total > 1 ? o.stochastic_depth_prob * static_cast<double>(block_id) / (total - 1) : 0.0;
      blocks.emplace_back(dim, heads[static_cast<size_t>(s)], o.window_size, j % 2 == 0 ? 0 : o.window_size / 2,
                          o.mlp_ratio, sd, o.always_shift);
      stage->push_back(blocks.back());
      ++block_id;
    }
    features->push_back(stage);
    stages_.push_back(std::move(blocks));
    out_channels_.push_back(dim);
    if (s < 3) {
      merges_.emplace_back(dim);
      features->push_back(merges_.back());
    }
  }
  register_module("features", features);
  out_norms_.assign(4, torch::nn::LayerNorm(nullptr));
  for (auto i : o.out_norms) {
    MTPD_CHECK_ARG(i >= 0 && i < 4, "Swin: out_norms entries must be stages 0..3, got ", i);
    out_norms_[static_cast<size_t>(i)] = register_module("norm" + std::to_string(i), layer_norm(out_channels_[static_cast<size_t>(i)]));
  }
}

std::vector<at::Tensor> SwinBodyImpl::forward(const at::Tensor& x) {
  // (N, 3, H, W) -> conv -> (N, C, H/4, W/4) -> NHWC -> LayerNorm
  at::Tensor y = patch_norm->forward(patch_conv->forward(x).permute({0, 2, 3, 1}));
  std::vector<at::Tensor> outs;
  for (size_t s = 0; s < stages_.size(); ++s) {
    for (auto& b : stages_[s]) y = b->forward(y);
    // mmdetection: norm{i}(stage output) before NHWC -> NCHW; the next stage takes the un-normalized map
    at::Tensor o = out_norms_[s] ? out_norms_[s]->forward(y) : y;
    outs.push_back(o.permute({0, 3, 1, 2}).contiguous());  // NHWC -> NCHW
    if (s < merges_.size()) y = merges_[s]->forward(y);
  }
  return outs;
}

void SwinBodyImpl::set_trainable_layers(int64_t n) {
  MTPD_CHECK_ARG(n >= 0 && n <= 5, "trainable_layers must be in 0..5, got ", n);
  // Trainable feature indices: stage k (1..4) lives at features.{2k-1}, its merging before it at
  // features.{2k-2}; n = 5 also trains the patch embedding (features.0).
  std::vector<std::string> train;
  for (int64_t k = 4; k > 4 - std::min<int64_t>(n, 4); --k) {
    train.push_back("features." + std::to_string(2 * k - 1) + ".");
    if (k > 1) train.push_back("features." + std::to_string(2 * k - 2) + ".");
    train.push_back("norm" + std::to_string(k - 1) + ".");  // mmdetection's output norm of the stage
  }
  if (n == 5) train.push_back("features.0.");
  for (auto& p : named_parameters(true)) {
    bool keep = false;
    for (const auto& pre : train)
      if (p.key().compare(0, pre.size(), pre) == 0) keep = true;
    p.value().set_requires_grad(keep);
  }
}

}  // namespace mtpd
