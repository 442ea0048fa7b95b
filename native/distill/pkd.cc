// PKD (Cao et al., NeurIPS 2022; mmrazor pkd_loss.py): each map is normalized per channel
// over (N, H, W) to zero mean and unit (unbiased) std, then
//   L = loss_weight * mean((norm(S) - norm(T))^2) / 2   ( = loss_weight * (1 - Pearson r) ).
// The student is resized to the teacher by the pair's adapter (mmrazor's resize_stu=True).
// With valid cells in the context, the statistics and the mean run over the valid positions of
// the batch only (padding is not distilled).
#include <ATen/ATen.h>

#include "core/errors.h"
#include "distill/loss.h"

namespace mtpd::distill {
namespace {

class PkdLossImpl : public LossImpl {
 public:
  PkdLossImpl(double loss_weight, double eps) : loss_weight_(loss_weight), eps_(eps) {}

  // x: (C, M), one column per position.
  at::Tensor norm(const at::Tensor& x) const {
    const at::Tensor mean = x.mean(-1, true);
    const at::Tensor std = x.std(-1, /*unbiased=*/true, /*keepdim=*/true);
    return (x - mean) / (std + eps_);
  }

  LossTerms forward(const at::Tensor& s, const at::Tensor& t, const LossContext& ctx) override {
    check_pair_shapes(s, t, "pkd");
    check_valid(s, ctx, "pkd");
    // (N, C, H, W) -> (C, M): N*H*W positions, or the M valid ones.
    const at::Tensor xs = valid_columns(s, ctx), xt = valid_columns(t, ctx);
    MTPD_CHECK_SHAPE(xs.size(1) > 1, "pkd: needs more than one value per channel, got ", s.sizes(),
                     ctx.valid.empty() ? "" : " with valid cells");
    return {{"pkd", (norm(xs) - norm(xt)).pow(2).mean() * (loss_weight_ / 2.0)}};
  }
  std::string type() const override { return "pkd"; }
  Json config() const override { return {{"loss_weight", loss_weight_}, {"eps", eps_}}; }

 private:
  double loss_weight_, eps_;
};

std::shared_ptr<LossImpl> make_pkd(const Json& o, const LossShape&) {
  check_known_options(o, "distillation loss \"pkd\"", {"loss_weight", "eps"});
  const double eps = opt_number(o, "eps", 1e-6);
  MTPD_CHECK_ARG(eps >= 0, "pkd: option \"eps\" must not be negative");
  return std::make_shared<PkdLossImpl>(opt_number(o, "loss_weight", 1.0), eps);
}

MTPD_REGISTER_DISTILL_LOSS("pkd", "Pearson-normalized MSE (PKD); loss_weight 1, eps 1e-6", make_pkd);

}  // namespace
}  // namespace mtpd::distill
