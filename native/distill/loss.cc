#include "distill/loss.h"

#include <ATen/core/TensorBody.h>

#include "core/errors.h"

namespace mtpd::distill {

namespace {
NamedRegistry<LossFactory>& losses() {
  static NamedRegistry<LossFactory> r("distillation loss");
  return r;
}
}  // namespace

void register_loss(const std::string& type, LossFactory factory, std::string doc) {
  losses().add(type, std::move(factory), std::move(doc));
}

std::shared_ptr<LossImpl> build_loss(const std::string& type, const Json& options, const LossShape& shape) {
  LossFactory f = losses().get(type);
  MTPD_CHECK_ARG(options.is_object(), "options of distillation loss \"", type, "\" must be an object");
  return f(options, shape);
}

std::vector<std::pair<std::string, std::string>> registered_losses() { return losses().list(); }

void check_pair_shapes(const at::Tensor& s, const at::Tensor& t, const std::string& what) {
  MTPD_CHECK_SHAPE(s.dim() == 4, what, ": student map must be (N, C, H, W), got ", s.sizes());
  MTPD_CHECK_SHAPE(t.dim() == 4, what, ": teacher map must be (N, C, H, W), got ", t.sizes());
  MTPD_CHECK_SHAPE(s.sizes() == t.sizes(), what, ": student map ", s.sizes(), " and teacher map ", t.sizes(),
                   " differ after the adapter");
  MTPD_CHECK_ARG(s.is_floating_point() && t.is_floating_point(), what, ": maps must be floating point");
  MTPD_CHECK_SHAPE(s.numel() > 0, what, ": empty feature map ", s.sizes());
}

}  // namespace mtpd::distill
