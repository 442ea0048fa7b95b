// BatchNorm2d that can compute its batch statistics over every process of a data-parallel job
// (torch.nn.SyncBatchNorm, mmdetection's SyncBN). make_sync_batch_norm2d gives a plain
// torch::nn::BatchNorm2d (same parameters, buffers and names) and a forward for it that stays
// plain BatchNorm until a NormStatsSync is attached (set_norm_sync); then, in training mode, each
// forward sums the per-channel count, sum and sum of squares of its input over the processes,
// normalizes with the job's mean and biased variance, and updates the running statistics with
// the job's unbiased variance, as one BatchNorm2d over the job's whole batch. Backward sums the
// gradients of those statistics over the processes, so the input gradient is that of the job's
// batch. Eval mode is plain BatchNorm2d.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/batchnorm.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace mtpd {

// What a synchronized BatchNorm needs from the job (implemented over c10d in dist/norm_sync.h).
class NormStatsSync {
 public:
  virtual ~NormStatsSync() = default;
  // In place: the elementwise sum over the processes (same shape and dtype on every process).
  // Every process calls it in the same order.
  virtual void allreduce_sum(at::Tensor& t) = 0;
  // This process's share of the step's loss (its images / the job's images, as the gradient
  // sync weighs its gradients); 0: its batch counts for nothing (a copy that keeps it in step).
  virtual double weight() const = 0;
};

struct SyncBatchNorm2d {
  std::shared_ptr<torch::nn::BatchNorm2dImpl> module;
  // (N, C, H, W) -> (N, C, H, W)
  std::function<at::Tensor(const at::Tensor&)> forward;
};
SyncBatchNorm2d make_sync_batch_norm2d(const torch::nn::BatchNorm2dOptions& options);

// Attaches `sync` (null: detaches) to every BatchNorm2d under `root` made by
// make_sync_batch_norm2d (the trainable BatchNorm layers; FrozenBatchNorm2d has no batch
// statistics); returns how many.
int64_t set_norm_sync(torch::nn::Module& root, const std::shared_ptr<NormStatsSync>& sync);

// One synchronized forward of `bn` in training mode (updates its running statistics).
at::Tensor sync_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, const std::shared_ptr<NormStatsSync>& sync);

}  // namespace mtpd
