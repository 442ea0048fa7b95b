// Data-parallel gradient averaging around an optimizer's backward (train/grad_hook.h), in the
// shape of PyTorch DDP's reducer: the parameters are cut into buckets of about bucket_bytes
// (in reverse registration order, roughly the order backward produces their gradients); a hook
// on every parameter copies its gradient, times this rank's weight, into its bucket's flat
// buffer as soon as autograd has it, and a full bucket starts its allreduce (sum) on the
// process group at once, while backward goes on with the layers below. Buckets start strictly in
// index order, so every rank issues the same collectives in the same order. After backward the
// remaining buckets start (a parameter that got no gradient counts as zeros), every allreduce is
// waited for and the sums are copied back into the gradients.
//
// The weights: rank r's gradient is the mean over its n_r images; with weight n_r / N (N the
// images of the step over all ranks) the sum is the mean over all N images, so P ranks x B
// images give the gradient of one process x P*B images (set_weight before each step).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "train/grad_hook.h"

namespace c10d {
class Work;
}

namespace mtpd::dist {

class ProcessGroup;

class GradSync : public train::GradHook {
 public:
  GradSync(std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes = 25 * 1024 * 1024);
  ~GradSync() override;

  void before_backward(const std::vector<at::Tensor>& params) override;
  void after_backward(const std::vector<at::Tensor>& params) override;

  // This rank's share of the step's gradient (n_r / N); 1 / world size by default.
  void set_weight(double w);
  double weight() const { return weight_; }
  const std::shared_ptr<ProcessGroup>& group() const { return group_; }
  // Rank `root`'s values of `params` to every rank (the same start everywhere).
  void broadcast(std::vector<at::Tensor>& params, int root = 0);
  // (number of buckets, their sizes in elements) once built.
  std::vector<int64_t> bucket_sizes() const;

  struct State;

 private:
  void build(const std::vector<at::Tensor>& params);
  std::shared_ptr<ProcessGroup> group_;
  int64_t bucket_bytes_;
  double weight_;
  std::shared_ptr<State> state_;
  std::vector<at::Tensor> params_;       // as built (identity checked on every step)
  std::vector<unsigned> hook_handles_;   // parallel to params_
};

}  // namespace mtpd::dist
