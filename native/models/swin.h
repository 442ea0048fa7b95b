// torchvision.models.swin_transformer (v1: swin_t / swin_s / swin_b) as a detection body:
// `features` only (features.0 = patch embedding conv + LayerNorm, features.1/3/5/7 = stages of
// SwinTransformerBlocks, features.2/4/6 = PatchMerging); the outputs of the four stages are
// permuted from NHWC to NCHW for the FPN. Names are torchvision's, so the `features.*` keys of
// its ImageNet checkpoints load under backbone.body.
//
// Shifted window attention with relative position bias as torchvision's
// shifted_window_attention (pad to whole windows, roll by -shift, mask -100 across shifted
// regions). mmdetection's SwinTransformer (always_shift, out_norms) differs in two ways: it
// shifts the windows of odd blocks even where the padded map is a single window (torchvision
// drops the shift there), and it normalizes each returned stage's output with a LayerNorm of its
// own (norm{i}, i = 0..3, registered on the body as mmdetection names them). Stochastic depth ("row" mode, rate growing linearly over blocks) runs only in
// training mode.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

namespace mtpd {

struct SwinOptions {
  int64_t patch_size = 4;
  int64_t embed_dim = 96;
  std::vector<int64_t> depths{2, 2, 6, 2};
  std::vector<int64_t> num_heads{3, 6, 12, 24};
  int64_t window_size = 7;
  double mlp_ratio = 4.0;
  double stochastic_depth_prob = 0.2;
  double width_mult = 1.0;  // scales embed_dim and num_heads (head dim stays)
  bool always_shift = false;       // mmdetection's ShiftWindowMSA
  std::vector<int64_t> out_norms;  // stages (0..3) whose output gets a LayerNorm norm{i} (mmdetection)

  static SwinOptions named(const std::string& arch);  // swin_t, swin_s, swin_b
  static bool is_known(const std::string& arch);
  static std::vector<std::string> known();
};

class ShiftedWindowAttentionImpl : public torch::nn::Module {
 public:
  ShiftedWindowAttentionImpl(int64_t dim, int64_t window_size, int64_t shift_size, int64_t num_heads,
                             bool always_shift = false);
  at::Tensor forward(const at::Tensor& x);  // (B, H, W, C)

 private:
  int64_t window_, shift_, heads_;
  bool always_shift_;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  at::Tensor relative_position_bias_table, relative_position_index;
};
TORCH_MODULE(ShiftedWindowAttention);

class SwinTransformerBlockImpl : public torch::nn::Module {
 public:
  SwinTransformerBlockImpl(int64_t dim, int64_t num_heads, int64_t window_size, int64_t shift_size,
                           double mlp_ratio, double stochastic_depth_prob, bool always_shift = false);
  at::Tensor forward(const at::Tensor& x);

 private:
  at::Tensor drop_path(const at::Tensor& x);
  double sd_prob_;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  ShiftedWindowAttention attn{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SwinTransformerBlock);

class PatchMergingImpl : public torch::nn::Module {
 public:
  explicit PatchMergingImpl(int64_t dim);
  at::Tensor forward(const at::Tensor& x);  // (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C)

 private:
  torch::nn::Linear reduction{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(PatchMerging);

class SwinBodyImpl : public torch::nn::Module {
 public:
  explicit SwinBodyImpl(const SwinOptions& options);
  // The four stage outputs, NCHW (strides 4, 8, 16, 32).
  std::vector<at::Tensor> forward(const at::Tensor& x);
  const std::vector<int64_t>& out_channels() const { return out_channels_; }
  // 0..5 as for ResNet: 5 trains everything; n < 5 freezes the patch embedding and the first
  // 4 - n stages (with their patch merging).
  void set_trainable_layers(int64_t n);

 private:
  SwinOptions options_;
  torch::nn::Conv2d patch_conv{nullptr};
  torch::nn::LayerNorm patch_norm{nullptr};
  std::vector<std::vector<SwinTransformerBlock>> stages_;
  std::vector<PatchMerging> merges_;
  std::vector<torch::nn::LayerNorm> out_norms_;  // per stage; null where the stage has none
  std::vector<int64_t> out_channels_;
};
TORCH_MODULE(SwinBody);

}  // namespace mtpd
