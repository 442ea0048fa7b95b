// PyTorch-style state dicts for libtorch modules: parameters and buffers under their dotted
// names ("backbone.body.layer1.0.conv1.weight"), and loading with a by-name report.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>
#include <utility>
#include <vector>

namespace mtpd {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Modules whose checkpoints carry keys they deliberately do not keep (torchvision's
// FrozenBatchNorm2d drops "num_batches_tracked") implement this.
class StateDictFilter {
 public:
  virtual ~StateDictFilter() = default;
  // True when `key` may appear in a checkpoint without matching anything here.
  virtual bool ignorable_key(const std::string& key) const = 0;
  // True when `key` (one of this module's own) may be absent from a checkpoint: it then keeps its
  // current value (run-time state such as a random generator's, which other frameworks do not save).
  virtual bool optional_key(const std::string& /*key*/) const { return false; }
};

NamedTensors state_dict(const torch::nn::Module& module);

struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, not in the module
  struct Mismatch {
    std::string key;
    std::vector<int64_t> expected;
    std::vector<int64_t> got;
  };
  std::vector<Mismatch> mismatched;
  int64_t loaded = 0;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary(size_t max_names = 10) const;
};

// Copies matching tensors into the module (cast to the module's dtype and device). With
// strict=true any missing, unexpected or misshaped key throws ArgumentError and nothing is
// changed; otherwise what matches is loaded and the rest is reported.
LoadReport load_state_dict(torch::nn::Module& module, const NamedTensors& tensors, bool strict);

}  // namespace mtpd
