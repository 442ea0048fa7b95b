#include "order/linear_fit.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/errors.h"

namespace mtpd {

namespace {

// A's map brought to B's whole map as the adapter does without layouts: bilinear resampling
// (align_corners=false), in both directions.
at::Tensor resize_to(const at::Tensor& x, int64_t H, int64_t W) {
  if (x.size(2) == H && x.size(3) == W) return x;
  return at::upsample_bilinear2d(x.to(at::kFloat), {H, W}, /*align_corners=*/false);
}

// (N, C, h, w) brought to (H, W); returns (N*H*W, C) rows, or only the rows where mask (N, 1, H, W)
// is set when it is defined.
at::Tensor pixels(const at::Tensor& x, int64_t H, int64_t W, at::ScalarType dtype, const at::Tensor& mask) {
  at::Tensor t = resize_to(x, H, W);
  // (N, C, H, W) -> (N, H, W, C) -> (N*H*W, C)
  at::Tensor rows = t.permute({0, 2, 3, 1}).reshape({-1, t.size(1)});
  if (mask.defined()) rows = rows.index_select(0, (mask.reshape({-1}) > 0.5).nonzero().squeeze(1));
  return rows.to(dtype);
}

at::Tensor mask_at(const std::vector<at::Tensor>* masks, size_t i) {
  return masks ? (*masks)[i].to(at::kFloat) : at::Tensor();
}

void check_pairs(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys, const char* split,
                 int64_t& ca, int64_t& cb, const std::vector<at::Tensor>* masks) {
  int64_t pixels = 0;
  MTPD_CHECK_SHAPE(!masks || masks->size() == ys.size(), split, ": ", masks ? masks->size() : 0, " masks for ",
                   ys.size(), " feature batches");
  MTPD_CHECK_SHAPE(xs.size() == ys.size(), split, ": ", xs.size(), " batches of A features but ", ys.size(),
                   " of B features");
  MTPD_CHECK_SHAPE(!xs.empty(), split, ": no feature batches");
  for (size_t i = 0; i < xs.size(); ++i) {
    const auto& x = xs[i];
    const auto& y = ys[i];
    MTPD_CHECK_SHAPE(x.dim() == 4 && y.dim() == 4, split, "[", i, "]: features must be (N, C, H, W), got ", x.sizes(),
                     " and ", y.sizes());
    MTPD_CHECK_SHAPE(x.size(0) == y.size(0), split, "[", i, "]: A has ", x.size(0), " images, B has ", y.size(0));
    if (ca < 0) ca = x.size(1);
    if (cb < 0) cb = y.size(1);
    MTPD_CHECK_SHAPE(x.size(1) == ca && y.size(1) == cb, split, "[", i, "]: channel counts change between batches");
    MTPD_CHECK_SHAPE(ca > 0 && cb > 0, split, "[", i, "]: features need at least one channel, got ", x.sizes(), " and ",
                     y.sizes());
    if (masks) {
      const at::Tensor& m = (*masks)[i];
      MTPD_CHECK_SHAPE(m.dim() == 4 && m.size(0) == y.size(0) && m.size(1) == 1 && m.size(2) == y.size(2) &&
                           m.size(3) == y.size(3),
                       split, "[", i, "]: the mask must be (N, 1, H, W) of B's map ", y.sizes(), ", got ", m.sizes());
      MTPD_CHECK_SHAPE(x.size(2) == y.size(2) && x.size(3) == y.size(3), split, "[", i, "]: with masks A's map ",
                       x.sizes(), " must already be on B's grid ", y.sizes(), " (aligned)");
      pixels += (m > 0.5).sum().item<int64_t>();
    } else {
      pixels += y.size(0) * y.size(2) * y.size(3);
    }
  }
  // Without pixels every sum is empty and the cost would come out as 0: a perfect adapter.
  MTPD_CHECK_SHAPE(pixels > 0, split, ": the feature batches hold no pixels (0 images or empty maps)");
}

LinearMoments zero_moments(int64_t ca, int64_t cb, const at::TensorOptions& f64) {
  return LinearMoments{torch::zeros({ca}, f64), torch::zeros({cb}, f64), torch::zeros({ca, ca}, f64),
                       torch::zeros({ca, cb}, f64)};
}

void add_moments(LinearMoments& into, const LinearMoments& m) {
  into.sx += m.sx;
  into.sy += m.sy;
  into.sxx += m.sxx;
  into.sxy += m.sxy;
  into.syy += m.syy;
  into.n += m.n;
}

}  // namespace

LinearFitResult fit_linear_map(const std::vector<at::Tensor>& train_x, const std::vector<at::Tensor>& train_y,
                               const std::vector<at::Tensor>& val_x, const std::vector<at::Tensor>& val_y,
                               const LinearFitOptions& o, const std::vector<at::Tensor>* train_mask,
                               const std::vector<at::Tensor>* val_mask) {
  torch::NoGradGuard outer_no_grad;
  MTPD_CHECK_ARG((train_mask == nullptr) == (val_mask == nullptr), "give masks for both splits or neither");
  int64_t ca = -1, cb = -1;
  check_pairs(train_x, train_y, "train", ca, cb, train_mask);
  check_pairs(val_x, val_y, "val", ca, cb, val_mask);
  MTPD_CHECK_ARG(o.fitter == "closed-form" || o.fitter == "sgd", "fitter must be \"closed-form\" or \"sgd\", got \"",
                 o.fitter, "\"");
  const auto device = train_x[0].device();
  LinearFitResult r;
  at::Tensor weight, bias;

  if (o.fitter == "closed-form") {
    // One streaming pass over the training batches collects first and second moments in float64
    // (sums of x, y, x x^T, x y^T, |y|^2). The map is ridge least squares on the centred moments
    // (the bias is not regularised). With ridge < 0 ("auto") the strength is chosen from a grid by
    // the error on held-out training batches, then the map is refitted on all of them.
    const bool auto_ridge = o.ridge < 0 && train_x.size() >= 2;
    auto f64 = at::TensorOptions().dtype(at::kDouble).device(device);
    LinearMoments fit = zero_moments(ca, cb, f64), held = zero_moments(ca, cb, f64);
    for (size_t i = 0; i < train_x.size(); ++i) {
      // Every fourth batch is held out (the last one when there are fewer than four).
      const bool hold = auto_ridge && (train_x.size() >= 4 ? i % 4 == 3 : i + 1 == train_x.size());
      add_moments(hold ? held : fit, linear_moments(train_x[i], train_y[i], mask_at(train_mask, i)));
    }
    const LinearSolution s = solve_linear_moments(fit, auto_ridge ? &held : nullptr, o.ridge);
    weight = s.weight;  // (C_B, C_A)
    bias = s.bias;
    r.ridge = s.ridge;
    r.train_pixels = static_cast<int64_t>(s.pixels);
    // The training error from the moments (as the streamed fit, which reads the batches once).
    r.train_mse = s.train_se / std::max(s.pixels * static_cast<double>(cb), 1.0);
  } else {
    MTPD_CHECK_ARG(o.steps > 0, "steps must be positive");
    MTPD_CHECK_ARG(o.lr > 0, "lr must be positive");
    MTPD_CHECK_ARG(o.optimizer == "adam" || o.optimizer == "sgd", "optimizer must be \"adam\" or \"sgd\"");
    auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(ca, cb, 1).bias(true));
    {
      // torch's default Conv2d init (kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in))) drawn
      // from a generator of our own: torch::manual_seed would reseed the process-wide generator
      // under every other caller (module inits, other workers).
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
      const double gain = std::sqrt(2.0 / (1 + std::pow(std::sqrt(5.0), 2)));
      const double bound_w = std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(ca)));
      const double bound_b = 1 / std::sqrt(static_cast<double>(ca));
      conv->weight.uniform_(-bound_w, bound_w, gen);
      conv->bias.uniform_(-bound_b, bound_b, gen);
    }
    conv->to(device);
    std::unique_ptr<torch::optim::Optimizer> opt;
    if (o.optimizer == "adam")
      opt = std::make_unique<torch::optim::Adam>(conv->parameters(), torch::optim::AdamOptions(o.lr));
    else
      opt = std::make_unique<torch::optim::SGD>(conv->parameters(), torch::optim::SGDOptions(o.lr).momentum(o.momentum));
    std::vector<at::Tensor> xs, ms;
    for (size_t i = 0; i < train_x.size(); ++i) {
      xs.push_back(resize_to(train_x[i], train_y[i].size(2), train_y[i].size(3)).to(at::kFloat));
      ms.push_back(mask_at(train_mask, i));
    }
    torch::AutoGradMode grad(true);
    for (int64_t s = 0; s < o.steps; ++s) {
      const size_t b = static_cast<size_t>(s) % xs.size();
      opt->zero_grad();
      const at::Tensor y = train_y[b].to(at::kFloat);
      at::Tensor loss;
      if (ms[b].defined()) {
        // Mean over the valid positions' elements: (N, C_B, H, W) * (N, 1, H, W).
        const at::Tensor count = (ms[b].sum() * static_cast<double>(cb)).clamp_min(1);
        loss = ((conv->forward(xs[b]) - y).pow(2) * ms[b]).sum() / count;
      } else {
        loss = torch::mse_loss(conv->forward(xs[b]), y);
      }
      loss.backward();
      opt->step();
    }
    weight = conv->weight.detach().reshape({cb, ca}).to(at::kDouble);
    bias = conv->bias.detach().to(at::kDouble);
  }

  auto score = [&](const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys,
                   const std::vector<at::Tensor>* masks, int64_t& count) {
    double se = 0;
    count = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const at::Tensor m = mask_at(masks, i);
      at::Tensor X = pixels(xs[i], ys[i].size(2), ys[i].size(3), at::kDouble, m);
      at::Tensor Y = pixels(ys[i], ys[i].size(2), ys[i].size(3), at::kDouble, m);
      at::Tensor pred = torch::addmm(bias.unsqueeze(0), X, weight.t());
      se += (pred - Y).pow(2).sum().item<double>();
      count += Y.numel();
    }
    return count ? se / static_cast<double>(count) : 0.0;
  };
  int64_t train_elems = 0, val_elems = 0;
  if (o.fitter == "sgd") r.train_mse = score(train_x, train_y, train_mask, train_elems);
  r.val_mse = score(val_x, val_y, val_mask, val_elems);
  if (o.fitter == "sgd") r.train_pixels = train_elems / std::max<int64_t>(cb, 1);
  r.val_pixels = val_elems / std::max<int64_t>(cb, 1);
  r.weight = weight.to(at::kFloat);
  r.bias = bias.to(at::kFloat);
  return r;
}

LinearMoments linear_moments(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask) {
  torch::NoGradGuard no_grad;
  MTPD_CHECK_SHAPE(x.dim() == 4 && y.dim() == 4, "features must be (N, C, H, W), got ", x.sizes(), " and ", y.sizes());
  MTPD_CHECK_SHAPE(x.size(0) == y.size(0), "A has ", x.size(0), " images, B has ", y.size(0));
  if (mask.defined())
    MTPD_CHECK_SHAPE(mask.dim() == 4 && mask.size(0) == y.size(0) && mask.size(1) == 1 && mask.size(2) == y.size(2) &&
                         mask.size(3) == y.size(3) && x.size(2) == y.size(2) && x.size(3) == y.size(3),
                     "the mask must be (N, 1, H, W) of B's map ", y.sizes(), " with A's map ", x.sizes(),
                     " on the same grid, got ", mask.sizes());
  const at::Tensor valid = mask.defined() ? mask.to(at::kFloat) : at::Tensor();
  // (N, C, H, W) -> (P, C) rows of the valid positions, as fit_linear_map's closed form.
  at::Tensor X = pixels(x, y.size(2), y.size(3), at::kDouble, valid);
  at::Tensor Y = pixels(y, y.size(2), y.size(3), at::kDouble, valid);
  auto f64 = at::TensorOptions().dtype(at::kDouble).device(x.device());
  const int64_t ca = x.size(1), cb = y.size(1);
  LinearMoments m = zero_moments(ca, cb, f64);
  m.sx += X.sum(0);
  m.sy += Y.sum(0);
  m.sxx += X.t().mm(X);
  m.sxy += X.t().mm(Y);
  m.syy += Y.pow(2).sum().item<double>();
  m.n += static_cast<double>(X.size(0));
  return m;
}

LinearSolution solve_linear_moments(const LinearMoments& fit_in, const LinearMoments* held, double ridge) {
  torch::NoGradGuard no_grad;
  const int64_t ca = fit_in.sx.size(0);
  auto f64 = at::TensorOptions().dtype(at::kDouble).device(fit_in.sx.device());
  // The same arithmetic as fit_linear_map's closed form.
  auto solve = [&](const LinearMoments& m, double lambda, at::Tensor& w_out, at::Tensor& b_out) {
    at::Tensor mx = m.sx / m.n, my = m.sy / m.n;
    at::Tensor cxx = m.sxx / m.n - mx.unsqueeze(1).mm(mx.unsqueeze(0));
    at::Tensor cxy = m.sxy / m.n - mx.unsqueeze(1).mm(my.unsqueeze(0));
    const double scale = std::max(cxx.diagonal().mean().item<double>(), 1e-12);
    at::Tensor reg = cxx + torch::eye(ca, f64) * (std::max(lambda, 0.0) * scale + 1e-12 * scale);
    w_out = at::linalg_solve(reg, cxy, /*left=*/true);  // (C_A, C_B)
    b_out = my - w_out.t().mv(mx);
  };
  auto sse = [&](const LinearMoments& m, const at::Tensor& w, const at::Tensor& b) {
    return m.syy - 2.0 * (w * m.sxy).sum().item<double>() - 2.0 * b.dot(m.sy).item<double>() +
           (w * m.sxx.mm(w)).sum().item<double>() + 2.0 * b.dot(w.t().mv(m.sx)).item<double>() +
           m.n * b.dot(b).item<double>();
  };
  LinearMoments fit{fit_in.sx.clone(), fit_in.sy.clone(), fit_in.sxx.clone(), fit_in.sxy.clone(), fit_in.syy, fit_in.n};
  double lambda = ridge < 0 ? 1e-3 : ridge;
  if (held && held->n > 0 && fit.n > 0) {
    double best = std::numeric_limits<double>::infinity();
    for (double l : {0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0}) {
      at::Tensor w, b;
      solve(fit, l, w, b);
      const double e = sse(*held, w, b);
      if (e < best) {
        best = e;
        lambda = l;
      }
    }
    add_moments(fit, *held);
  }
  MTPD_CHECK_SHAPE(fit.n > 0, "the training feature batches hold no pixels (0 images or empty maps)");
  at::Tensor w, b;
  solve(fit, lambda, w, b);
  // From the moments (rounding can take an exact fit a hair below zero).
  const double train_se = std::max(sse(fit, w, b), 0.0);
  return {w.t().contiguous(), b, lambda, fit.n, train_se};
}

std::pair<double, int64_t> linear_score(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask,
                                        const at::Tensor& weight, const at::Tensor& bias) {
  torch::NoGradGuard no_grad;
  const at::Tensor m = mask.defined() ? mask.to(at::kFloat) : at::Tensor();
  at::Tensor X = pixels(x, y.size(2), y.size(3), at::kDouble, m);
  at::Tensor Y = pixels(y, y.size(2), y.size(3), at::kDouble, m);
  MTPD_CHECK_SHAPE(X.size(1) == weight.size(1) && Y.size(1) == weight.size(0), "the map (", weight.sizes(),
                   ") does not fit features of ", X.size(1), " -> ", Y.size(1), " channels");
  at::Tensor pred = torch::addmm(bias.to(at::kDouble).unsqueeze(0), X, weight.to(at::kDouble).t());
  return {(pred - Y).pow(2).sum().item<double>(), Y.numel()};
}

}  // namespace mtpd
