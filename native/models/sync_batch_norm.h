// BatchNorm2d that can compute its batch statistics over every process of a data-parallel job
// (torch.nn.SyncBatchNorm, mmdetection's SyncBN). It is torch.nn.BatchNorm2d (same parameters,
// buffers and names) until a NormStatsSync is attached (set_norm_sync); then, in training mode,
// each forward sums the per-channel count, sum and sum of squares of its input over the
// processes, normalizes with the job's mean and biased variance, and updates the running
// statistics with the job's unbiased variance, as one BatchNorm2d over the job's whole batch.
// Backward sums the gradients of those statistics over the processes, so the input gradient is
// that of the job's batch. Eval mode, and a layer with no sync, are plain BatchNorm2d.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/batchnorm.h>

#include <cstdint>
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

class SyncBatchNorm2dImpl : public torch::nn::BatchNorm2dImpl {
 public:
  explicit SyncBatchNorm2dImpl(const torch::nn::BatchNorm2dOptions& options);
  // (N, C, H, W) -> (N, C, H, W)
  at::Tensor forward(const at::Tensor& x);
  void set_sync(std::shared_ptr<NormStatsSync> sync) { sync_ = std::move(sync); }
  bool synced() const { return sync_ != nullptr; }

 private:
  std::shared_ptr<NormStatsSync> sync_;
};

// Attaches `sync` (null: detaches) to every SyncBatchNorm2dImpl under `root` (the trainable
// BatchNorm2d layers; FrozenBatchNorm2d has no batch statistics); returns how many.
int64_t set_norm_sync(torch::nn::Module& root, const std::shared_ptr<NormStatsSync>& sync);

}  // namespace mtpd
