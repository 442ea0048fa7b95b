// MGD: masked generative distillation (Yang et al., ECCV 2022; yzd-v/MGD mgd.py):
//   M in {0,1}^{N x 1 x H x W}: U ~ Uniform(0,1) per position, M = 0 where U > 1 - lambda_mgd
//   (a fraction lambda_mgd of positions is dropped, shared over channels, redrawn every call);
//   G = Conv3x3 -> ReLU -> Conv3x3 (C_T -> C_T, padding 1), one per pair, trained with the student;
//   L = alpha_mgd * sum((G(S * M) - T)^2) / N.
// The mask is drawn on the CPU from this loss's own libtorch generator (seeded from the
// distiller's seed, or the "seed" option), so runs are reproducible on every device. The
// generator's state is the buffer "generator_state" (so a checkpoint of the distiller resumes the
// same sequence of masks); a checkpoint without it (e.g. from yzd-v/MGD) keeps the seeded state.
// With valid cells in the context, each image is masked, generated and compared on its valid
// crop alone (G's 3x3 convs zero-pad at the crop's edges, as at the map's), still divided by N.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include "core/errors.h"
#include "core/state_dict.h"

#include <mutex>
#include "distill/loss.h"

namespace mtpd::distill {
namespace {

class MgdLossImpl : public LossImpl, public StateDictFilter {
 public:
  MgdLossImpl(int64_t channels, double alpha, double lambda, uint64_t seed)
      : alpha_(alpha), lambda_(lambda), seed_(seed), gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
    namespace nn = torch::nn;
    generator_state_ = register_buffer("generator_state", gen_.get_state());
    generation_ = register_module(
        "generation", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(channels, channels, 3).padding(1)), nn::ReLU(),
                                     nn::Conv2d(nn::Conv2dOptions(channels, channels, 3).padding(1))));
  }

  // (N, 1, H, W) in {0, 1}, dtype and device of `like`.
  at::Tensor draw_mask(const at::Tensor& like) {
    {
      std::lock_guard<std::mutex> lock(gen_.mutex());
      gen_.set_state(generator_state_.to(at::kCPU));
    }
    // at::rand takes the generator's lock itself.
    const at::Tensor u =
        at::rand({like.size(0), 1, like.size(2), like.size(3)}, gen_, at::TensorOptions().dtype(at::kFloat));
    {
      std::lock_guard<std::mutex> lock(gen_.mutex());
      at::NoGradGuard no_grad;
      generator_state_.copy_(gen_.get_state());
    }
    const at::Tensor m = at::where(u > 1.0 - lambda_, at::zeros_like(u), at::ones_like(u));
    return m.to(like.device(), like.scalar_type());
  }

  // sum((G(S * M) - T)^2) over the images of s, t (n, C, H, W), with a fresh mask.
  at::Tensor sum(const at::Tensor& s, const at::Tensor& t) {
    const at::Tensor masked = s * draw_mask(s);  // (N, C, H, W) * (N, 1, H, W)
    return (generation_->forward(masked) - t).pow(2).sum();
  }

  LossTerms forward(const at::Tensor& s, const at::Tensor& t, const LossContext& ctx) override {
    check_pair_shapes(s, t, "mgd");
    check_valid(s, ctx, "mgd");
    at::Tensor total;
    if (ctx.valid.empty()) {
      total = sum(s, t);
    } else {
      // Image by image on its valid crop: one (1, 1, h_i, w_i) mask each, in image order.
      for (int64_t i = 0; i < s.size(0); ++i) {
        const at::Tensor one = sum(valid_crop(s, ctx, i), valid_crop(t, ctx, i));
        total = total.defined() ? total + one : one;
      }
    }
    const at::Tensor loss = total / static_cast<double>(s.size(0));
    return {{"mgd", loss * alpha_}};
  }
  std::string type() const override { return "mgd"; }
  bool ignorable_key(const std::string&) const override { return false; }
  bool optional_key(const std::string& key) const override { return key == "generator_state"; }
  Json config() const override {
    return {{"alpha_mgd", alpha_}, {"lambda_mgd", lambda_}, {"seed", seed_}};
  }

 private:
  double alpha_, lambda_;
  uint64_t seed_;
  at::Generator gen_;
  at::Tensor generator_state_;
  torch::nn::Sequential generation_{nullptr};
};

std::shared_ptr<LossImpl> make_mgd(const Json& o, const LossShape& shape) {
  check_known_options(o, "distillation loss \"mgd\"", {"alpha_mgd", "lambda_mgd", "seed"});
  const double lambda = opt_number(o, "lambda_mgd", 0.65);
  MTPD_CHECK_ARG(lambda >= 0 && lambda <= 1, "mgd: option \"lambda_mgd\" must be in [0, 1], got ", lambda);
  const int64_t seed = opt_int(o, "seed", static_cast<int64_t>(shape.seed));
  MTPD_CHECK_ARG(seed >= 0, "mgd: option \"seed\" must not be negative");
  MTPD_CHECK_ARG(shape.channels > 0, "mgd: teacher channels must be positive");
  return std::make_shared<MgdLossImpl>(shape.channels, opt_number(o, "alpha_mgd", 2e-5), lambda,
                                       static_cast<uint64_t>(seed));
}

MTPD_REGISTER_DISTILL_LOSS("mgd",
                           "masked generative distillation; alpha_mgd 2e-5, lambda_mgd 0.65 (two-stage: 5e-7, 0.45)",
                           make_mgd);

}  // namespace
}  // namespace mtpd::distill
