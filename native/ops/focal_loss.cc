#include "ops/focal_loss.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace mtpd::ops {

at::Tensor sigmoid_focal_loss(const at::Tensor& inputs, const at::Tensor& targets, double alpha, double gamma) {
  at::Tensor p = at::sigmoid(inputs);
  at::Tensor ce = at::binary_cross_entropy_with_logits(inputs, targets, {}, {}, at::Reduction::None);
  at::Tensor p_t = p * targets + (1 - p) * (1 - targets);
  at::Tensor loss = ce * at::pow(1 - p_t, gamma);
  if (alpha >= 0) {
    at::Tensor alpha_t = alpha * targets + (1 - alpha) * (1 - targets);
    loss = alpha_t * loss;
  }
  return loss;
}

namespace {

constexpr int64_t kRowsPerBlock = 64;  // the unit of the fixed-order partial sums

// One element: loss and d loss / dx for target 1 (pos) or 0.
//   e = exp(-|x|), p = sigmoid(x), m = 1 - p (both without cancellation),
//   BCE = max(x, 0) - x t + log1p(e): t = 1: max(-x, 0) + log1p(e), dBCE/dx = -m; t = 0: max(x, 0) + log1p(e), p.
//   q = 1 - p_t: t = 1: m, dq/dx = -p m; t = 0: p, dq/dx = p m.
//   FL = a BCE q^g,  dFL/dx = a (dBCE q^g + BCE g q^(g-1) dq).
template <typename T>
inline T focal_element(T x, bool pos, T a, double gamma, T* grad) {
  const T e = std::exp(-std::abs(x));
  const T inv = T(1) / (T(1) + e);
  const T p = x >= 0 ? inv : e * inv;
  const T m = x >= 0 ? e * inv : inv;
  const T sp = std::log1p(e);
  const T ce = (pos ? std::max(-x, T(0)) : std::max(x, T(0))) + sp;
  const T q = pos ? m : p;
  const T dce = pos ? -m : p;
  const T dq = pos ? -p * m : p * m;
  T qg, dqg;
  if (gamma == 2) {
    qg = q * q;
    dqg = 2 * q;
  } else if (gamma == 0) {
    qg = 1;
    dqg = 0;
  } else {
    qg = static_cast<T>(std::pow(q, static_cast<T>(gamma)));
    dqg = static_cast<T>(gamma * std::pow(q, static_cast<T>(gamma - 1)));
  }
  if (grad != nullptr) *grad = a * (dce * qg + ce * dqg * dq);
  return a * ce * qg;
}

// The loss summed over non-ignored rows, and (want_grad) its gradient (A, K) (zero rows where ignored).
template <typename T>
std::pair<double, at::Tensor> fused_cpu(const at::Tensor& logits, const at::Tensor& classes, double alpha,
                                        double gamma, bool want_grad) {
  const at::Tensor x = logits.contiguous();
  const at::Tensor c = classes.contiguous();
  const int64_t rows = x.size(0), k = x.size(1);
  at::Tensor grad = want_grad ? at::empty_like(x, at::MemoryFormat::Contiguous) : at::Tensor();
  const T* xp = x.data_ptr<T>();
  const int64_t* cp = c.data_ptr<int64_t>();
  T* gp = want_grad ? grad.data_ptr<T>() : nullptr;
  const T a_pos = alpha >= 0 ? static_cast<T>(alpha) : T(1);
  const T a_neg = alpha >= 0 ? static_cast<T>(1 - alpha) : T(1);
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  at::parallel_for(0, blocks, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double sum = 0;
      const int64_t r1 = std::min(rows, (b + 1) * kRowsPerBlock);
      for (int64_t r = b * kRowsPerBlock; r < r1; ++r) {
        const int64_t cls = cp[r];
        const T* xr = xp + r * k;
        T* gr = gp != nullptr ? gp + r * k : nullptr;
        if (cls == -2) {
          if (gr != nullptr) std::fill(gr, gr + k, T(0));
          continue;
        }
        T row = 0;
        for (int64_t j = 0; j < k; ++j) {
          const bool pos = j == cls;
          row += focal_element<T>(xr[j], pos, pos ? a_pos : a_neg, gamma, gr != nullptr ? gr + j : nullptr);
        }
        sum += static_cast<double>(row);
      }
      partial[static_cast<size_t>(b)] = sum;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return {total, grad};
}

std::pair<double, at::Tensor> fused(const at::Tensor& logits, const at::Tensor& classes, double alpha, double gamma,
                                    bool want_grad) {
  if (logits.scalar_type() == at::kDouble) return fused_cpu<double>(logits, classes, alpha, gamma, want_grad);
  return fused_cpu<float>(logits, classes, alpha, gamma, want_grad);
}

class FusedFocalLossSum : public torch::autograd::Function<FusedFocalLossSum> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits,
                            const at::Tensor& classes, double alpha, double gamma) {
    auto [total, grad] = fused(logits, classes, alpha, gamma, logits.requires_grad());
    if (grad.defined()) ctx->saved_data["grad"] = grad;
    return at::scalar_tensor(total, logits.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    MTPD_CHECK_ARG(!at::GradMode::is_enabled(),
                   "sigmoid focal loss: the fused CPU kernel has no second derivative (create_graph); compute the "
                   "loss with twice_differentiable set (Hessian products do)");
    const at::Tensor grad = ctx->saved_data["grad"].toTensor();
    return {grad * grad_outputs[0].to(grad.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// torchvision's sequence on the rows that are not ignored, with the one-hot target.
at::Tensor composed_sum(const at::Tensor& logits, const at::Tensor& classes, double alpha, double gamma) {
  at::Tensor target = at::zeros_like(logits);
  at::Tensor fg = (classes >= 0).nonzero().squeeze(1);
  if (fg.numel() > 0) target.index_put_({fg, classes.index_select(0, fg)}, 1.0);
  at::Tensor valid = (classes != -2).nonzero().squeeze(1);
  return sigmoid_focal_loss(logits.index_select(0, valid), target.index_select(0, valid), alpha, gamma).sum();
}

}  // namespace

at::Tensor sigmoid_focal_loss_sum(const at::Tensor& logits, const at::Tensor& classes, double alpha, double gamma,
                                  bool twice_differentiable) {
  MTPD_CHECK_SHAPE(logits.dim() == 2, "sigmoid focal loss: logits must be (A, K), got ", logits.sizes());
  MTPD_CHECK_SHAPE(classes.dim() == 1 && classes.size(0) == logits.size(0),
                   "sigmoid focal loss: classes must be (A) = (", logits.size(0), "), got ", classes.sizes());
  MTPD_CHECK_ARG(classes.scalar_type() == at::kLong, "sigmoid focal loss: classes must be int64, got ",
                 classes.scalar_type());
  MTPD_CHECK_ARG(at::isFloatingType(logits.scalar_type()), "sigmoid focal loss: logits must be floating, got ",
                 logits.scalar_type());
  MTPD_CHECK_ARG(std::isfinite(gamma) && gamma >= 0, "sigmoid focal loss: gamma must be >= 0, got ", gamma);
  const at::Tensor cls = classes.to(logits.device());
  if (cls.numel() > 0) {
    const int64_t lo = cls.min().item<int64_t>(), hi = cls.max().item<int64_t>();
    MTPD_CHECK_ARG(lo >= -2 && hi < logits.size(1), "sigmoid focal loss: classes must be in -2..", logits.size(1) - 1,
                   ", got ", lo, "..", hi);
  }
  const char* env = std::getenv("MTPD_FUSED_LOSS");
  const bool fusable = (env == nullptr || std::strcmp(env, "0") != 0) && logits.device().is_cpu() &&
                       (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble);
  if (!fusable || twice_differentiable) return composed_sum(logits, cls, alpha, gamma);
  if (!(logits.requires_grad() && at::GradMode::is_enabled())) {
    at::NoGradGuard no_grad;
    return at::scalar_tensor(fused(logits, cls, alpha, gamma, false).first, logits.options());
  }
  return FusedFocalLossSum::apply(logits, cls, alpha, gamma);
}

}  // namespace mtpd::ops
