// Feature matching, MTPD's "simple" distillation loss (Cao et al., ICML 2023, Sec. 3.1):
//   L = lambda * || F^T - r(F^S) ||_2^2
// per FPN level (the distiller sums levels). The paper does not state the reduction; the
// default is the mean over N*C*H*W (method.md 1.2), "sum" and "batchmean" (sum / N) are
// options. r (the adapter) is applied by the distiller before this loss. With valid cells in
// the context, the sum runs over the valid positions only and "mean" divides by their count
// times C (padding is not distilled).
#include <ATen/ATen.h>

#include "core/errors.h"
#include "distill/loss.h"

namespace mtpd::distill {
namespace {

class MseLossImpl : public LossImpl {
 public:
  MseLossImpl(double loss_weight, std::string reduction) : loss_weight_(loss_weight), reduction_(std::move(reduction)) {}

  LossTerms forward(const at::Tensor& s, const at::Tensor& t, const LossContext& ctx) override {
    check_pair_shapes(s, t, "mse");
    check_valid(s, ctx, "mse");
    // (N, C, H, W), or (C, M) over the M valid positions of the batch.
    const at::Tensor sq = ctx.valid.empty() ? (s - t).pow(2) : (valid_columns(s, ctx) - valid_columns(t, ctx)).pow(2);
    at::Tensor v;
    if (reduction_ == "mean") {
      v = sq.mean();
    } else if (reduction_ == "sum") {
      v = sq.sum();
    } else {  // batchmean
      v = sq.sum() / static_cast<double>(s.size(0));
    }
    return {{"mse", v * loss_weight_}};
  }
  std::string type() const override { return "mse"; }
  Json config() const override { return {{"loss_weight", loss_weight_}, {"reduction", reduction_}}; }

 private:
  double loss_weight_;
  std::string reduction_;
};

std::shared_ptr<LossImpl> make_mse(const Json& o, const LossShape&) {
  check_known_options(o, "distillation loss \"mse\"", {"loss_weight", "reduction"});
  const std::string red = opt_string(o, "reduction", "mean");
  MTPD_CHECK_ARG(red == "mean" || red == "sum" || red == "batchmean",
                 "mse: option \"reduction\" must be \"mean\", \"sum\" or \"batchmean\", got \"", red, "\"");
  return std::make_shared<MseLossImpl>(opt_number(o, "loss_weight", 1.0), red);
}

MTPD_REGISTER_DISTILL_LOSS("mse",
                           "feature matching ||T - r(S)||^2 (MTPD 3.1); loss_weight 1, reduction mean|sum|batchmean",
                           make_mse);

}  // namespace
}  // namespace mtpd::distill
