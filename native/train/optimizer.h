// Optimizers over named parameter groups, with gradient-norm clipping and automatic mixed
// precision (loss scaling on CUDA): SGD (momentum, dampening 0, weight decay, nesterov) and AdamW, numerically
// the same as torch.optim.SGD / torch.optim.AdamW (they are libtorch's own implementations).
//
// Groups are chosen by rules over parameter names, first match wins:
//   {"type": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
//    "groups": [{"name": "backbone", "prefix": ["backbone.body."], "lr_mult": 0.1},
//               {"name": "no_decay", "suffix": [".bias"], "weight_decay": 0}],
//    "max_grad_norm": 35, "amp": false}
// Parameters matching no rule go to group "default". Frozen parameters (requires_grad false)
// are left out, so torchvision's trainable_layers carries over.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/registry.h"
#include "core/state_dict.h"
#include "train/grad_hook.h"

namespace torch::optim {
class Optimizer;
}

namespace mtpd::train {

using NamedParams = std::vector<std::pair<std::string, at::Tensor>>;

struct GroupRule {
  std::string name;
  std::vector<std::string> prefix;  // any of these prefixes ...
  std::vector<std::string> suffix;  // ... or any of these suffixes selects the parameter
  double lr_mult = 1.0;
  double weight_decay = -1;         // < 0: the optimizer's weight_decay
};

struct OptimizerOptions {
  std::string type = "sgd";   // "sgd" | "adamw"
  double lr = 0.01;
  double momentum = 0.9;      // sgd
  bool nesterov = false;      // sgd
  double weight_decay = 1e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double max_grad_norm = 0;   // 0: no clipping
  bool amp = false;           // mixed precision: autocast in forward (the caller's scope, train/amp.h) + loss scaling on CUDA
  double init_scale = 65536.0;
  int64_t growth_interval = 2000;
  std::vector<GroupRule> groups;

  static OptimizerOptions from_json(const Json& o);
  Json to_json() const;
};

struct StepResult {
  double grad_norm = 0;   // total norm before clipping (NaN/inf when the step was skipped)
  bool skipped = false;   // AMP found inf/nan gradients: no update, scale lowered
  double scale = 1.0;     // AMP loss scale used for this step
};

class Optimizer {
 public:
  // `params` are (name, tensor) pairs, e.g. a module's named_parameters(); frozen ones are dropped.
  Optimizer(const NamedParams& params, OptimizerOptions options);
  ~Optimizer();

  // zero_grad, backward of `loss` (scaled under AMP), unscale, clip, step. `loss` must be a
  // scalar with grad. Throws ArgumentError when it is not.
  StepResult step(const at::Tensor& loss);

  // Current learning rate of the "base" (lr_mult 1); all groups keep their multipliers.
  void set_lr(double lr);
  double lr() const { return lr_; }
  const OptimizerOptions& options() const { return options_; }
  // (group name, number of tensors, number of elements) for logs and tests.
  std::vector<std::tuple<std::string, int64_t, int64_t>> group_summary() const;
  int64_t steps() const { return steps_; }
  // A hook around backward (data-parallel gradient averaging); null removes it.
  void set_grad_hook(std::shared_ptr<GradHook> hook) { grad_hook_ = std::move(hook); }
  const std::shared_ptr<GradHook>& grad_hook() const { return grad_hook_; }
  // The trainable parameters, in the order the constructor was given them.
  const std::vector<at::Tensor>& params() const { return all_params_; }

  // The optimizer's state as named tensors, for checkpoints (so that a resumed run takes the
  // same steps as an uninterrupted one):
  //   "<param>.momentum_buffer" (sgd), "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.step"
  //   (adamw), "amp.scale" and "amp.growth_tracker" (mixed precision), "steps".
  // <param> is the parameter's name as given to the constructor. Tensors are the live ones (the
  // caller copies them to the host).
  NamedTensors state_dict() const;
  // Restores a state_dict() of an optimizer of the same type over parameters of the same names
  // and shapes. Throws ArgumentError naming the first key that does not fit; nothing is changed then.
  void load_state_dict(const NamedTensors& sd);

 private:
  OptimizerOptions options_;
  double lr_;
  std::vector<double> lr_mults_;
  std::vector<std::string> group_names_;
  std::vector<at::Tensor> all_params_;
  std::vector<std::string> param_names_;  // parallel to all_params_
  std::unique_ptr<torch::optim::Optimizer> opt_;
  bool scaled_ = false;                // amp on CUDA: the loss scaler below runs
  at::Tensor scale_, growth_tracker_;  // AMP grad scaler state (CUDA)
  int64_t steps_ = 0;
  std::shared_ptr<GradHook> grad_hook_;
};

// Named trainable parameters of a module (requires_grad only).
NamedParams trainable_parameters(const torch::nn::Module& module, const std::string& prefix = "");

}  // namespace mtpd::train
