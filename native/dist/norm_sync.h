// Synchronized BatchNorm's statistics over a data-parallel job (models/sync_batch_norm.h): sums
// on the process group's own channel for them (ProcessGroup::allreduce_norm), weighted as the
// gradient sync of the same stage weighs this process's gradients (its share of the batch).
#pragma once

#include <memory>

#include "dist/grad_sync.h"
#include "models/sync_batch_norm.h"

namespace mtpd::dist {

class GroupNormSync : public NormStatsSync {
 public:
  explicit GroupNormSync(std::shared_ptr<GradSync> grads);
  void allreduce_sum(at::Tensor& t) override;
  double weight() const override;

 private:
  std::shared_ptr<GradSync> grads_;
};

}  // namespace mtpd::dist
