// CWD: channel-wise distillation (Shu et al., ICCV 2021), mmrazor's cwd.py reduction:
//   phi(y)_{c,i} = softmax_i(y_{c,i} / tau) over the H*W positions of channel c,
//   L = loss_weight * tau^2 / (N*C) * sum_{n,c,i} phi(T) * (log phi(T) - log phi(S)).
// Defaults tau 1, loss_weight 1 (the mmrazor detection configs use loss_weight 10).
// With valid cells in the context, each image's distributions run over its valid cells only
// (its crop); the N*C normalization is unchanged.
#include <ATen/ATen.h>

#include "core/errors.h"
#include "distill/loss.h"

namespace mtpd::distill {
namespace {

class CwdLossImpl : public LossImpl {
 public:
  CwdLossImpl(double tau, double loss_weight) : tau_(tau), loss_weight_(loss_weight) {}

  // Sum over rows of KL(softmax(t) || softmax(s)); s, t (R, P): one distribution per row.
  at::Tensor kl(const at::Tensor& s, const at::Tensor& t) const {
    const at::Tensor log_pt = at::log_softmax(t / tau_, 1);
    const at::Tensor log_ps = at::log_softmax(s / tau_, 1);
    return (log_pt.exp() * (log_pt - log_ps)).sum();
  }

  LossTerms forward(const at::Tensor& s, const at::Tensor& t, const LossContext& ctx) override {
    check_pair_shapes(s, t, "cwd");
    check_valid(s, ctx, "cwd");
    const int64_t n = s.size(0), c = s.size(1), hw = s.size(2) * s.size(3);
    at::Tensor total;
    if (ctx.valid.empty()) {
      // (N, C, H, W) -> (N*C, H*W): one distribution per channel.
      total = kl(s.reshape({n * c, hw}), t.reshape({n * c, hw}));
    } else {
      for (int64_t i = 0; i < n; ++i) {
        // (1, C, h_i, w_i) -> (C, h_i*w_i)
        const at::Tensor k = kl(valid_crop(s, ctx, i).reshape({c, -1}), valid_crop(t, ctx, i).reshape({c, -1}));
        total = total.defined() ? total + k : k;
      }
    }
    return {{"cwd", total * (tau_ * tau_ * loss_weight_ / static_cast<double>(n * c))}};
  }
  std::string type() const override { return "cwd"; }
  Json config() const override { return {{"tau", tau_}, {"loss_weight", loss_weight_}}; }

 private:
  double tau_, loss_weight_;
};

std::shared_ptr<LossImpl> make_cwd(const Json& o, const LossShape&) {
  check_known_options(o, "distillation loss \"cwd\"", {"tau", "loss_weight"});
  const double tau = opt_number(o, "tau", 1.0);
  MTPD_CHECK_ARG(tau > 0, "cwd: option \"tau\" must be positive, got ", tau);
  return std::make_shared<CwdLossImpl>(tau, opt_number(o, "loss_weight", 1.0));
}

MTPD_REGISTER_DISTILL_LOSS("cwd", "channel-wise distillation, KL of spatial softmax per channel; tau 1, loss_weight 1",
                           make_cwd);

}  // namespace
}  // namespace mtpd::distill
