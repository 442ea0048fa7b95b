#include "distill/loss.h"

#include <ATen/ATen.h>

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

void check_valid(const at::Tensor& s, const LossContext& ctx, const std::string& what) {
  if (ctx.valid.empty()) return;
  MTPD_CHECK_SHAPE(static_cast<int64_t>(ctx.valid.size()) == s.size(0), what, ": valid cells for ", ctx.valid.size(),
                   " images, the maps hold ", s.size(0));
  for (size_t i = 0; i < ctx.valid.size(); ++i) {
    const auto [h, w] = ctx.valid[i];
    MTPD_CHECK_SHAPE(h > 0 && w > 0 && h <= s.size(2) && w <= s.size(3), what, ": valid cells of image ", i, " (", h,
                     "x", w, ") must be non-empty and inside the ", s.size(2), "x", s.size(3), " map");
  }
}

at::Tensor valid_crop(const at::Tensor& x, const LossContext& ctx, int64_t i) {
  const at::Tensor one = x.slice(0, i, i + 1);  // (1, C, H, W)
  if (ctx.valid.empty()) return one;
  const auto [h, w] = ctx.valid[static_cast<size_t>(i)];
  return one.slice(2, 0, h).slice(3, 0, w);  // (1, C, h, w)
}

at::Tensor valid_columns(const at::Tensor& x, const LossContext& ctx) {
  const int64_t c = x.size(1);
  if (ctx.valid.empty()) return x.permute({1, 0, 2, 3}).reshape({c, -1});  // (C, N*H*W)
  std::vector<at::Tensor> cols;
  for (int64_t i = 0; i < x.size(0); ++i) cols.push_back(valid_crop(x, ctx, i).reshape({c, -1}));  // (C, h_i*w_i)
  return at::cat(cols, 1);  // (C, sum_i h_i*w_i)
}

LossContext image_context(const LossContext& ctx, int64_t i) {
  const size_t k = static_cast<size_t>(i);
  LossContext one;
  if (k < ctx.boxes.size()) one.boxes.push_back(ctx.boxes[k]);
  if (k < ctx.image_sizes.size()) one.image_sizes.push_back(ctx.image_sizes[k]);
  return one;
}

}  // namespace mtpd::distill
