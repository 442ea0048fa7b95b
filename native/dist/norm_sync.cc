#include "dist/norm_sync.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "dist/process_group.h"

namespace mtpd::dist {

GroupNormSync::GroupNormSync(std::shared_ptr<GradSync> grads) : grads_(std::move(grads)) {
  MTPD_CHECK_ARG(grads_ && grads_->group(), "SyncBatchNorm: no gradient sync (process group)");
}

void GroupNormSync::allreduce_sum(at::Tensor& t) { grads_->group()->allreduce_norm(t); }

double GroupNormSync::weight() const { return grads_->weight(); }

}  // namespace mtpd::dist
