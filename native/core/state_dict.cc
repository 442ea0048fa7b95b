#include "core/state_dict.h"

#include <torch/torch.h>

#include <unordered_map>
#include <unordered_set>

#include "core/errors.h"

namespace mtpd {

NamedTensors state_dict(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
const StateDictFilter* filter_of(const torch::nn::Module& m) {
  return dynamic_cast<const StateDictFilter*>(&m);
}
}  // namespace

std::string LoadReport::summary(size_t max_names) const {
  std::string out;
  auto list = [&](const char* what, const std::vector<std::string>& keys) {
    if (keys.empty()) return;
    out += fmt(out.empty() ? "" : "; ", keys.size(), " ", what, " key(s): ");
    for (size_t i = 0; i < keys.size() && i < max_names; ++i) out += (i ? ", " : "") + keys[i];
    if (keys.size() > max_names) out += fmt(", ... (", keys.size() - max_names, " more)");
  };
  list("missing", missing);
  list("unexpected", unexpected);
  if (!mismatched.empty()) {
    out += fmt(out.empty() ? "" : "; ", mismatched.size(), " misshaped key(s): ");
    for (size_t i = 0; i < mismatched.size() && i < max_names; ++i)
      out += fmt(i ? ", " : "", mismatched[i].key, " (model ", shape_str(mismatched[i].expected), ", file ",
                 shape_str(mismatched[i].got), ")");
  }
  return out;
}

LoadReport load_state_dict(torch::nn::Module& module, const NamedTensors& tensors, bool strict) {
  LoadReport report;
  std::unordered_map<std::string, at::Tensor> own;
  std::vector<std::string> order;
  for (auto& [k, v] : state_dict(module)) {
    own.emplace(k, v);
    order.push_back(k);
  }
  // Filters may live on any submodule: ask each with the key relative to it.
  std::vector<std::pair<std::string, const StateDictFilter*>> filters;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    if (auto* f = filter_of(*item.value())) filters.emplace_back(item.key(), f);
  }
  auto asks = [&](const std::string& key, bool (StateDictFilter::*question)(const std::string&) const) {
    for (const auto& [prefix, f] : filters) {
      if (prefix.empty()) {
        if ((f->*question)(key)) return true;
      } else if (key.size() > prefix.size() + 1 && key.compare(0, prefix.size(), prefix) == 0 &&
                 key[prefix.size()] == '.') {
        if ((f->*question)(key.substr(prefix.size() + 1))) return true;
      }
    }
    return false;
  };
  // A BatchNorm's step counter may be absent, as PyTorch's BatchNorm accepts (it then counts
  // from 0): checkpoints of FrozenBatchNorm2d models (torchvision's pretrained detectors) load
  // into a model with trainable BatchNorm.
  std::unordered_set<std::string> bn_counters;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    if (dynamic_cast<const torch::nn::BatchNorm2dImpl*>(item.value().get()) != nullptr) {
      bn_counters.insert(item.key().empty() ? "num_batches_tracked" : item.key() + ".num_batches_tracked");
    }
  }
  auto ignorable = [&](const std::string& key) { return asks(key, &StateDictFilter::ignorable_key); };
  auto optional = [&](const std::string& key) { return bn_counters.count(key) > 0 || asks(key, &StateDictFilter::optional_key); };

  std::unordered_map<std::string, const at::Tensor*> given;
  for (const auto& [k, v] : tensors) {
    if (given.count(k)) throw ArgumentError(fmt("state dict has key \"", k, "\" twice"));
    given.emplace(k, &v);
    auto it = own.find(k);
    if (it == own.end()) {
      if (!ignorable(k)) report.unexpected.push_back(k);
    } else if (it->second.sizes() != v.sizes()) {
      report.mismatched.push_back({k, it->second.sizes().vec(), v.sizes().vec()});
    }
  }
  for (const auto& k : order)
    if (!given.count(k) && !optional(k)) report.missing.push_back(k);

  if (strict && !report.ok()) {
    throw ArgumentError(fmt("state dict does not match the model: ", report.summary()));
  }
  torch::NoGradGuard no_grad;
  for (const auto& k : order) {
    auto g = given.find(k);
    if (g == given.end()) continue;
    at::Tensor& dst = own.at(k);
    const at::Tensor& src = *g->second;
    if (dst.sizes() != src.sizes()) continue;
    dst.copy_(src.to(dst.device(), dst.scalar_type()));
    ++report.loaded;
  }
  return report;
}

}  // namespace mtpd
