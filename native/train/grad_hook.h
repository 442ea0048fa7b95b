// A hook around an optimizer's backward: what data-parallel training plugs in to average the
// gradients over processes (dist/grad_sync.h). The optimizer knows nothing of processes.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace mtpd::train {

class GradHook {
 public:
  virtual ~GradHook() = default;
  // Before backward of the step's loss; `params` are the optimizer's trainable parameters.
  virtual void before_backward(const std::vector<at::Tensor>& params) = 0;
  // After backward, before unscaling and clipping: when it returns every param.grad() holds the
  // gradient the step applies (defined for every parameter).
  virtual void after_backward(const std::vector<at::Tensor>& params) = 0;
};

}  // namespace mtpd::train
