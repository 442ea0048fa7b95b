// FGD: focal and global distillation (Yang et al., CVPR 2022; yzd-v/FGD fgd.py), per level:
//   attention (temperature temp), from |F| of a map:
//     A^S = H*W * softmax_{HW}(mean_C |F| / temp)   (N, H, W)
//     A^C = C   * softmax_C(mean_{HW} |F| / temp)   (N, C)
//   focal: W = sqrt(A^S_T) * sqrt(A^C_T) (the TEACHER's attention weights both maps)
//     L_fg = sum((W * sqrt(M_fg) * (S - T))^2) / N,  L_bg likewise with M_bg
//   attention: L_at = [sum|A^C_S - A^C_T| + sum|A^S_S - A^S_T|] / N
//   global: R(F) = F + Conv1x1(ReLU(LN(Conv1x1(ctx(F))))), ctx(F) = sum_j softmax_j(Conv1x1_{C->1}(F))_j F_j,
//     with separate GC blocks for the student and the teacher (both trained),
//     L_gl = sum((R_S(S) - R_T(T))^2) / N
//   L = alpha * L_fg + beta * L_bg + gamma * L_at + lambda * L_gl, returned as four terms.
// Defaults are the FGD class defaults (temp 0.5, alpha 1e-3, beta 5e-4, gamma 1e-3, lambda 5e-6);
// the RetinaNet configs use gamma 5e-4, the two-stage ones 5e-5/2.5e-5/5e-5/5e-7.
// Submodule names follow fgd.py (conv_mask_s, channel_add_conv_s.0, ...).
// With valid cells in the context, every term is computed image by image on the image's valid
// crop (attention softmaxes, masks, GC context over its content only; boxes scaled by the crop's
// size over the image size), still divided by N: padding is not distilled.
#include "distill/fgd.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>

#include <array>
#include <cmath>

#include "core/errors.h"

namespace mtpd::distill {

std::pair<at::Tensor, at::Tensor> fgd_masks(const LossContext& ctx, int64_t n, int64_t h, int64_t w,
                                            const at::Device& device) {
  MTPD_CHECK_ARG(static_cast<int64_t>(ctx.boxes.size()) == n, "fgd: needs boxes for each of the ", n,
                 " images, got ", ctx.boxes.size());
  MTPD_CHECK_ARG(static_cast<int64_t>(ctx.image_sizes.size()) == n, "fgd: needs image_sizes for each of the ", n,
                 " images, got ", ctx.image_sizes.size());
  const auto fopts = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor fg = at::zeros({n, h, w}, fopts);
  const at::Tensor rows = at::arange(h, fopts).view({1, h, 1});  // (1, H, 1)
  const at::Tensor cols = at::arange(w, fopts).view({1, 1, w});  // (1, 1, W)
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor& b = ctx.boxes[i];
    MTPD_CHECK_SHAPE(b.dim() == 2 && b.size(1) == 4, "fgd: boxes[", i, "] must be (K, 4), got ", b.sizes());
    const auto [ih, iw] = ctx.image_sizes[i];
    MTPD_CHECK_SHAPE(ih > 0 && iw > 0, "fgd: image_sizes[", i, "] must be positive, got (", ih, ", ", iw, ")");
    if (b.size(0) == 0) continue;
    // (K, 4) in image pixels -> map cells, on the same float32 arithmetic as fgd.py.
    const at::Tensor bx = b.to(fopts);
    const at::Tensor x1 = bx.select(1, 0) / static_cast<double>(iw) * static_cast<double>(w);
    const at::Tensor y1 = bx.select(1, 1) / static_cast<double>(ih) * static_cast<double>(h);
    const at::Tensor x2 = bx.select(1, 2) / static_cast<double>(iw) * static_cast<double>(w);
    const at::Tensor y2 = bx.select(1, 3) / static_cast<double>(ih) * static_cast<double>(h);
    const at::Tensor wmin = x1.floor(), wmax = x2.ceil(), hmin = y1.floor(), hmax = y2.ceil();  // (K)
    const at::Tensor area = 1.0 / ((hmax + 1 - hmin) * (wmax + 1 - wmin));                      // (K)
    const int64_t k = b.size(0);
    // (K, H, W): inside box k, inclusive extents; cells outside the map do not exist (clipped).
    const at::Tensor in_rows = (rows >= hmin.view({k, 1, 1})) & (rows <= hmax.view({k, 1, 1}));
    const at::Tensor in_cols = (cols >= wmin.view({k, 1, 1})) & (cols <= wmax.view({k, 1, 1}));
    const at::Tensor vals = at::where(in_rows & in_cols, area.view({k, 1, 1}).expand({k, h, w}), at::zeros({}, fopts));
    fg[i] = std::get<0>(vals.max(0)).clamp_min(0);  // max over boxes; 0 where none covers
  }
  at::Tensor bg = (fg <= 0).to(at::kFloat);  // (N, H, W)
  const at::Tensor count = bg.sum({1, 2}, /*keepdim=*/true);
  bg = at::where(count > 0, bg / count.clamp_min(1), bg);
  return {fg, bg};
}

namespace {

namespace nn = torch::nn;

nn::Sequential channel_add(int64_t c) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(c, c / 2, 1)), nn::LayerNorm(nn::LayerNormOptions({c / 2, 1, 1})),
                        nn::ReLU(), nn::Conv2d(nn::Conv2dOptions(c / 2, c, 1)));
}

class FgdLossImpl : public LossImpl {
 public:
  FgdLossImpl(int64_t c, double temp, double alpha, double beta, double gamma, double lambda)
      : temp_(temp), alpha_(alpha), beta_(beta), gamma_(gamma), lambda_(lambda) {
    conv_mask_s_ = register_module("conv_mask_s", nn::Conv2d(nn::Conv2dOptions(c, 1, 1)));
    conv_mask_t_ = register_module("conv_mask_t", nn::Conv2d(nn::Conv2dOptions(c, 1, 1)));
    channel_add_conv_s_ = register_module("channel_add_conv_s", channel_add(c));
    channel_add_conv_t_ = register_module("channel_add_conv_t", channel_add(c));
    // fgd.py reset_parameters: mmcv kaiming_init(mode='fan_in') on conv_mask (normal, relu
    // gain, bias 0); the last conv of each channel_add is zero, so R starts as the identity.
    torch::NoGradGuard no_grad;
    for (auto* conv : {&conv_mask_s_, &conv_mask_t_}) {
      nn::init::kaiming_normal_((*conv)->weight, 0.0, torch::kFanIn, torch::kReLU);
      nn::init::zeros_((*conv)->bias);
    }
    for (auto* seq : {&channel_add_conv_s_, &channel_add_conv_t_}) {
      auto last = (*seq)[3]->as<nn::Conv2d>();
      nn::init::zeros_(last->weight);
      nn::init::zeros_(last->bias);
    }
  }

  // (spatial (N, H, W), channel (N, C))
  std::pair<at::Tensor, at::Tensor> attention(const at::Tensor& f) const {
    const int64_t n = f.size(0), c = f.size(1), h = f.size(2), w = f.size(3);
    const at::Tensor value = f.abs();
    const at::Tensor fea_map = value.mean(1);                               // (N, H, W)
    const at::Tensor s_att = at::softmax((fea_map / temp_).view({n, h * w}), 1).view({n, h, w}) * static_cast<double>(h * w);
    const at::Tensor channel_map = value.mean(2).mean(2);                   // (N, C)
    const at::Tensor c_att = at::softmax(channel_map / temp_, 1) * static_cast<double>(c);
    return {s_att, c_att};
  }

  // GC block: F + channel_add(context(F)).
  at::Tensor global(const at::Tensor& f, nn::Conv2d& conv_mask, nn::Sequential& add) const {
    const int64_t n = f.size(0), c = f.size(1), hw = f.size(2) * f.size(3);
    const at::Tensor mask = at::softmax(conv_mask->forward(f).view({n, 1, hw}), 2);  // (N, 1, HW)
    const at::Tensor context = at::bmm(f.reshape({n, c, hw}), mask.transpose(1, 2)).view({n, c, 1, 1});
    return f + add->forward(context);
  }

  // The four sums (fg, bg, at, gl) over the images of s, t (n, C, H, W), before the / N; every
  // cell of these maps is content, ctx holds their boxes and image sizes.
  std::array<at::Tensor, 4> sums(const at::Tensor& s, const at::Tensor& t, const LossContext& ctx) {
    const int64_t n = s.size(0), h = s.size(2), w = s.size(3);
    const auto [s_att_t, c_att_t] = attention(t);
    const auto [s_att_s, c_att_s] = attention(s);
    auto [fg, bg] = fgd_masks(ctx, n, h, w, s.device());
    fg = fg.to(s.scalar_type()).unsqueeze(1);  // (N, 1, H, W)
    bg = bg.to(s.scalar_type()).unsqueeze(1);
    // Teacher attention weights both maps: (N, 1, H, W) * (N, C, 1, 1).
    const at::Tensor weight = s_att_t.sqrt().unsqueeze(1) * c_att_t.sqrt().unsqueeze(-1).unsqueeze(-1);
    const at::Tensor diff = (s - t) * weight;  // (N, C, H, W)
    return {(diff * fg.sqrt()).pow(2).sum(), (diff * bg.sqrt()).pow(2).sum(),
            (c_att_s - c_att_t).abs().sum() + (s_att_s - s_att_t).abs().sum(),
            (global(s, conv_mask_s_, channel_add_conv_s_) - global(t, conv_mask_t_, channel_add_conv_t_)).pow(2).sum()};
  }

  LossTerms forward(const at::Tensor& s, const at::Tensor& t, const LossContext& ctx) override {
    check_pair_shapes(s, t, "fgd");
    check_valid(s, ctx, "fgd");
    const int64_t n = s.size(0);
    MTPD_CHECK_SHAPE(s.size(1) == conv_mask_s_->options.in_channels(), "fgd: built for ",
                     conv_mask_s_->options.in_channels(), " channels, got maps of ", s.sizes());
    std::array<at::Tensor, 4> total;
    if (ctx.valid.empty()) {
      total = sums(s, t, ctx);
    } else {
      // Image by image on its valid crop (attention, masks and GC context over its content only).
      MTPD_CHECK_ARG(static_cast<int64_t>(ctx.boxes.size()) == n, "fgd: needs boxes for each of the ", n,
                     " images, got ", ctx.boxes.size());
      for (int64_t i = 0; i < n; ++i) {
        auto one = sums(valid_crop(s, ctx, i), valid_crop(t, ctx, i), image_context(ctx, i));
        for (size_t k = 0; k < 4; ++k) total[k] = total[k].defined() ? total[k] + one[k] : one[k];
      }
    }
    const double nd = static_cast<double>(n);
    return {{"fgd.fg", total[0] / nd * alpha_}, {"fgd.bg", total[1] / nd * beta_}, {"fgd.at", total[2] / nd * gamma_},
            {"fgd.gl", total[3] / nd * lambda_}};
  }
  std::string type() const override { return "fgd"; }
  bool needs_boxes() const override { return true; }
  Json config() const override {
    return {{"temp", temp_}, {"alpha_fgd", alpha_}, {"beta_fgd", beta_}, {"gamma_fgd", gamma_}, {"lambda_fgd", lambda_}};
  }

 private:
  double temp_, alpha_, beta_, gamma_, lambda_;
  nn::Conv2d conv_mask_s_{nullptr}, conv_mask_t_{nullptr};
  nn::Sequential channel_add_conv_s_{nullptr}, channel_add_conv_t_{nullptr};
};

std::shared_ptr<LossImpl> make_fgd(const Json& o, const LossShape& shape) {
  check_known_options(o, "distillation loss \"fgd\"", {"temp", "alpha_fgd", "beta_fgd", "gamma_fgd", "lambda_fgd"});
  const double temp = opt_number(o, "temp", 0.5);
  MTPD_CHECK_ARG(temp > 0, "fgd: option \"temp\" must be positive, got ", temp);
  MTPD_CHECK_ARG(shape.channels >= 2, "fgd: needs at least 2 teacher channels (the GC block halves them), got ",
                 shape.channels);
  return std::make_shared<FgdLossImpl>(shape.channels, temp, opt_number(o, "alpha_fgd", 1e-3),
                                       opt_number(o, "beta_fgd", 5e-4), opt_number(o, "gamma_fgd", 1e-3),
                                       opt_number(o, "lambda_fgd", 5e-6));
}

MTPD_REGISTER_DISTILL_LOSS("fgd",
                           "focal and global distillation (needs GT boxes); temp 0.5, alpha 1e-3, beta 5e-4, gamma 1e-3, "
                           "lambda 5e-6",
                           make_fgd);

}  // namespace
}  // namespace mtpd::distill
