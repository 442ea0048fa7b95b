#include "models/sync_batch_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <mutex>
#include <unordered_map>

#include "core/errors.h"

namespace mtpd {

namespace {

// Backward of the statistics' allreduce. Process r's loss enters the job's loss with weight w_r
// (the gradient sync scales r's gradients by w_r before summing them): the gradient of the
// job's loss with respect to the summed statistics is sum_r w_r g_r, and process r returns it
// divided by w_r, so that after the gradient sync's scaling every process's statistics carry
// exactly that gradient.
struct StatsAllreduceBackward : public torch::autograd::Node {
  std::shared_ptr<NormStatsSync> sync;
  double weight = 1.0;

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    at::Tensor g = grads.at(0);
    // (2C + 1) float64, this process's share; every process takes part in the sum.
    at::Tensor sum = g.defined() ? (g * weight).contiguous() : at::Tensor();
    if (!sum.defined()) sum = input_metadata(0).zeros_like();
    sync->allreduce_sum(sum);
    return {weight > 0 ? sum / weight : at::zeros_like(sum)};
  }
  std::string name() const override { return "mtpd::SyncBatchNormStatsBackward"; }
};

// (K) local statistics -> (K) their sum over the processes, differentiable.
at::Tensor allreduce_stats(const at::Tensor& local, const std::shared_ptr<NormStatsSync>& sync, double weight) {
  at::Tensor out = local.detach().clone();
  sync->allreduce_sum(out);
  if (local.requires_grad()) {
    std::shared_ptr<StatsAllreduceBackward> node(new StatsAllreduceBackward(), torch::autograd::deleteNode);
    node->sync = sync;
    node->weight = weight;
    node->set_next_edges(torch::autograd::collect_next_edges(local));
    torch::autograd::set_history(out, node);
  }
  return out;
}

}  // namespace

namespace {
// The sync slot of every BatchNorm2d made by make_sync_batch_norm2d, found by the module's address.
struct Slot {
  std::shared_ptr<NormStatsSync> sync;
};
std::mutex g_slots_mutex;
std::unordered_map<const torch::nn::Module*, std::weak_ptr<Slot>> g_slots;
}  // namespace

SyncBatchNorm2d make_sync_batch_norm2d(const torch::nn::BatchNorm2dOptions& options) {
  auto m = std::make_shared<torch::nn::BatchNorm2dImpl>(options);
  auto slot = std::make_shared<Slot>();
  {
    std::lock_guard<std::mutex> lock(g_slots_mutex);
    for (auto it = g_slots.begin(); it != g_slots.end();) it = it->second.expired() ? g_slots.erase(it) : std::next(it);
    g_slots[m.get()] = slot;
  }
  return {m, [m, slot](const at::Tensor& x) {
            if (slot->sync && m->is_training()) return sync_batch_norm(*m, x, slot->sync);
            return m->forward(x);
          }};
}

at::Tensor sync_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, const std::shared_ptr<NormStatsSync>& sync) {
  const auto& options = bn.options;
  MTPD_CHECK_SHAPE(x.dim() == 4, "SyncBatchNorm2d: expected a 4-D input (N, C, H, W), got ", x.dim(), "-D");
  const int64_t c = x.size(1);
  MTPD_CHECK_SHAPE(c == options.num_features(), "SyncBatchNorm2d: expected ", options.num_features(),
                   " channels, got ", c);
  const double w = sync->weight();
  const double keep = w > 0 ? 1.0 : 0.0;  // a batch that counts for nothing adds nothing to the statistics
  // Per channel over (N, H, W), in float64: sum x, sum x^2, and the count.
  at::Tensor s1 = x.sum({0, 2, 3}, false, at::kDouble);        // (C)
  at::Tensor s2 = (x * x).sum({0, 2, 3}, false, at::kDouble);  // (C)
  at::Tensor n_local = at::full({1}, static_cast<double>(x.numel() / std::max<int64_t>(c, 1)),
                                x.options().dtype(at::kDouble));
  at::Tensor stats = allreduce_stats(at::cat({s1, s2, n_local}) * keep, sync, w);  // (2C + 1)
  const double n = stats[2 * c].item<double>();
  MTPD_CHECK_SHAPE(n > 1, "SyncBatchNorm2d: expected more than 1 value per channel over the job's batch, got ", n);
  at::Tensor mean = stats.narrow(0, 0, c) / n;                              // (C)
  at::Tensor var = (stats.narrow(0, c, c) / n - mean * mean).clamp_min(0);  // (C) biased
  if (options.track_running_stats()) {
    at::NoGradGuard no_grad;
    double factor = options.momentum() ? *options.momentum() : 0.0;
    if (bn.num_batches_tracked.defined()) {
      bn.num_batches_tracked += 1;
      if (!options.momentum()) factor = 1.0 / bn.num_batches_tracked.item<double>();
    }
    at::Tensor unbiased = var.detach() * (n / (n - 1));
    bn.running_mean.mul_(1 - factor).add_(mean.detach().to(bn.running_mean.scalar_type()), factor);
    bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var.scalar_type()), factor);
  }
  // y = (x - mean) / sqrt(var + eps) * weight + bias = x * scale + shift
  at::Tensor invstd = (var + options.eps()).rsqrt().to(x.scalar_type());  // (C)
  at::Tensor m = mean.to(x.scalar_type());
  at::Tensor scale = options.affine() ? bn.weight * invstd : invstd;
  at::Tensor shift = options.affine() ? bn.bias - m * scale : -m * scale;
  return x * scale.view({1, c, 1, 1}) + shift.view({1, c, 1, 1});
}

int64_t set_norm_sync(torch::nn::Module& root, const std::shared_ptr<NormStatsSync>& sync) {
  int64_t n = 0;
  std::lock_guard<std::mutex> lock(g_slots_mutex);
  for (const auto& m : root.modules(/*include_self=*/true)) {
    auto it = g_slots.find(m.get());
    if (it == g_slots.end()) continue;
    if (auto slot = it->second.lock()) {
      slot->sync = sync;
      ++n;
    }
  }
  return n;
}

}  // namespace mtpd
