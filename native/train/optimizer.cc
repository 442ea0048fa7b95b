#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <torch/version.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <type_traits>
#include <unordered_map>

#include "core/errors.h"
#include "train/amp.h"

namespace mtpd::train {

namespace {
std::vector<std::string> opt_strings(const Json& o, const std::string& key, const std::string& what) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return out;
  if (it->is_string()) return {it->get<std::string>()};
  MTPD_CHECK_ARG(it->is_array(), what, ".", key, " must be a string or an array of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    MTPD_CHECK_ARG((*it)[i].is_string(), what, ".", key, "[", i, "] must be a string");
    out.push_back((*it)[i].get<std::string>());
  }
  return out;
}

// libtorch keys per-parameter state by the TensorImpl's address: a string in 1.x, the pointer
// itself in later releases.
template <typename StateMap>
typename StateMap::key_type state_key(const at::Tensor& p) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

bool matches(const GroupRule& r, const std::string& name) {
  for (const auto& p : r.prefix)
    if (name.compare(0, p.size(), p) == 0) return true;
  for (const auto& s : r.suffix)
    if (name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) return true;
  return false;
}
}  // namespace

OptimizerOptions OptimizerOptions::from_json(const Json& o) {
  MTPD_CHECK_ARG(o.is_object(), "optimizer options must be an object");
  check_known_options(o, "optimizer",
                      {"type", "lr", "momentum", "nesterov", "weight_decay", "betas", "eps", "max_grad_norm", "amp",
                       "init_scale", "growth_interval", "groups"});
  OptimizerOptions r;
  r.type = opt_string(o, "type", r.type);
  MTPD_CHECK_ARG(r.type == "sgd" || r.type == "adamw", "optimizer.type must be \"sgd\" or \"adamw\", got \"", r.type,
                 "\"");
  if (r.type == "adamw") {
    r.weight_decay = 1e-2;  // torch.optim.AdamW's default
    r.lr = 1e-3;
  }
  r.lr = opt_number(o, "lr", r.lr);
  MTPD_CHECK_ARG(r.lr >= 0 && std::isfinite(r.lr), "optimizer.lr must be >= 0, got ", r.lr);
  r.momentum = opt_number(o, "momentum", r.momentum);
  MTPD_CHECK_ARG(r.momentum >= 0 && r.momentum < 1, "optimizer.momentum must be in [0, 1), got ", r.momentum);
  r.nesterov = opt_bool(o, "nesterov", r.nesterov);
  MTPD_CHECK_ARG(!r.nesterov || r.momentum > 0, "optimizer.nesterov needs momentum > 0");
  r.weight_decay = opt_number(o, "weight_decay", r.weight_decay);
  MTPD_CHECK_ARG(r.weight_decay >= 0, "optimizer.weight_decay must be >= 0");
  auto betas = opt_numbers(o, "betas", {r.beta1, r.beta2});
  MTPD_CHECK_ARG(betas.size() == 2 && betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1,
                 "optimizer.betas must be two numbers in [0, 1)");
  r.beta1 = betas[0];
  r.beta2 = betas[1];
  r.eps = opt_number(o, "eps", r.eps);
  r.max_grad_norm = opt_number(o, "max_grad_norm", r.max_grad_norm);
  MTPD_CHECK_ARG(r.max_grad_norm >= 0, "optimizer.max_grad_norm must be >= 0 (0 disables clipping)");
  r.amp = opt_bool(o, "amp", r.amp);
  r.init_scale = opt_number(o, "init_scale", r.init_scale);
  r.growth_interval = opt_int(o, "growth_interval", r.growth_interval);
  if (o.contains("groups") && !o.at("groups").is_null()) {
    const Json& g = o.at("groups");
    MTPD_CHECK_ARG(g.is_array(), "optimizer.groups must be an array");
    for (size_t i = 0; i < g.size(); ++i) {
      const std::string what = fmt("optimizer.groups[", i, "]");
      MTPD_CHECK_ARG(g[i].is_object(), what, " must be an object");
      check_known_options(g[i], what, {"name", "prefix", "suffix", "lr_mult", "weight_decay"});
      GroupRule rule;
      rule.name = opt_string(g[i], "name", fmt("group", i));
      rule.prefix = opt_strings(g[i], "prefix", what);
      rule.suffix = opt_strings(g[i], "suffix", what);
      MTPD_CHECK_ARG(!rule.prefix.empty() || !rule.suffix.empty(), what, " needs a prefix or a suffix");
      rule.lr_mult = opt_number(g[i], "lr_mult", 1.0);
      MTPD_CHECK_ARG(rule.lr_mult >= 0, what, ".lr_mult must be >= 0");
      rule.weight_decay = opt_number(g[i], "weight_decay", -1);
      r.groups.push_back(rule);
    }
  }
  return r;
}

Json OptimizerOptions::to_json() const {
  Json o{{"type", type}, {"lr", lr}, {"weight_decay", weight_decay}, {"max_grad_norm", max_grad_norm}, {"amp", amp}};
  if (type == "sgd") {
    o["momentum"] = momentum;
    o["nesterov"] = nesterov;
  } else {
    o["betas"] = {beta1, beta2};
    o["eps"] = eps;
  }
  Json groups = Json::array();
  for (const auto& g : this->groups) {
    Json j{{"name", g.name}, {"lr_mult", g.lr_mult}};
    if (!g.prefix.empty()) j["prefix"] = g.prefix;
    if (!g.suffix.empty()) j["suffix"] = g.suffix;
    if (g.weight_decay >= 0) j["weight_decay"] = g.weight_decay;
    groups.push_back(j);
  }
  o["groups"] = groups;
  return o;
}

NamedParams trainable_parameters(const torch::nn::Module& module, const std::string& prefix) {
  NamedParams out;
  for (const auto& p : module.named_parameters(true))
    if (p.value().requires_grad()) out.emplace_back(prefix + p.key(), p.value());
  return out;
}

Optimizer::Optimizer(const NamedParams& params, OptimizerOptions o) : options_(std::move(o)), lr_(options_.lr) {
  // Bucket parameters by the first matching rule; the rest go to "default".
  const size_t n_rules = options_.groups.size();
  std::vector<std::vector<at::Tensor>> buckets(n_rules + 1);
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    size_t g = n_rules;
    for (size_t r = 0; r < n_rules; ++r)
      if (matches(options_.groups[r], name)) {
        g = r;
        break;
      }
    buckets[g].push_back(p);
    all_params_.push_back(p);
    param_names_.push_back(name);
  }
  MTPD_CHECK_ARG(!all_params_.empty(), "optimizer: no trainable parameters");
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (size_t g = 0; g <= n_rules; ++g) {
    if (buckets[g].empty()) continue;
    const double mult = g < n_rules ? options_.groups[g].lr_mult : 1.0;
    const double wd = g < n_rules && options_.groups[g].weight_decay >= 0 ? options_.groups[g].weight_decay
                                                                           : options_.weight_decay;
    std::unique_ptr<torch::optim::OptimizerOptions> opts;
    if (options_.type == "sgd") {
      opts = std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr_ * mult)
                                                            .momentum(options_.momentum)
                                                            .weight_decay(wd)
                                                            .nesterov(options_.nesterov));
    } else {
      opts = std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr_ * mult)
                                                              .betas({options_.beta1, options_.beta2})
                                                              .eps(options_.eps)
                                                              .weight_decay(wd));
    }
    groups.emplace_back(buckets[g], std::move(opts));
    lr_mults_.push_back(mult);
    group_names_.push_back(g < n_rules ? options_.groups[g].name : "default");
  }
  if (options_.type == "sgd") {
    opt_ = std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(lr_));
  } else {
    opt_ = std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(lr_));
  }
  // Mixed precision: the caller runs the forward pass under autocast (train/amp.h); the loss is
  // scaled on CUDA only (float16), the CPU's bfloat16 needs no scaler.
  if (options_.amp) {
    const c10::Device dev = all_params_.front().device();
    MTPD_CHECK_ARG(dev.is_cuda() || dev.is_cpu(), "optimizer.amp: mixed precision runs on CUDA or the CPU, not on ",
                   dev.str());
    scaled_ = amp_scales_loss(dev);
    if (scaled_) {
      scale_ = at::full({1}, options_.init_scale, at::TensorOptions().dtype(at::kFloat).device(dev));
      growth_tracker_ = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(dev));
    }
  }
}

Optimizer::~Optimizer() = default;

void Optimizer::set_lr(double lr) {
  MTPD_CHECK_ARG(lr >= 0 && std::isfinite(lr), "learning rate must be >= 0, got ", lr);
  lr_ = lr;
  auto& groups = opt_->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    if (options_.type == "sgd")
      static_cast<torch::optim::SGDOptions&>(groups[g].options()).lr(lr * lr_mults_[g]);
    else
      static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(lr * lr_mults_[g]);
  }
}

std::vector<std::tuple<std::string, int64_t, int64_t>> Optimizer::group_summary() const {
  std::vector<std::tuple<std::string, int64_t, int64_t>> out;
  const auto& groups = opt_->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    int64_t numel = 0;
    for (const auto& p : groups[g].params()) numel += p.numel();
    out.emplace_back(group_names_[g], static_cast<int64_t>(groups[g].params().size()), numel);
  }
  return out;
}

StepResult Optimizer::step(const at::Tensor& loss) {
  MTPD_CHECK_ARG(loss.defined() && loss.numel() == 1, "optimizer.step: loss must be a scalar");
  MTPD_CHECK_ARG(loss.requires_grad(), "optimizer.step: loss does not require grad (no trainable parameter in it)");
  StepResult r;
  opt_->zero_grad();
  if (grad_hook_) grad_hook_->before_backward(all_params_);
  if (scaled_) {
    r.scale = scale_.item<float>();
    (loss.to(at::kFloat) * scale_).sum().backward();
    if (grad_hook_) grad_hook_->after_backward(all_params_);
    std::vector<at::Tensor> grads;
    for (auto& p : all_params_)
      if (p.grad().defined()) grads.push_back(p.grad());
    at::Tensor found_inf = at::zeros({1}, scale_.options());
    at::Tensor inv_scale = scale_.to(at::kDouble).reciprocal().to(at::kFloat);
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale);
    r.skipped = found_inf.item<float>() != 0.0f;
    if (!r.skipped) {
      r.grad_norm = options_.max_grad_norm > 0
                        ? torch::nn::utils::clip_grad_norm_(all_params_, options_.max_grad_norm)
                        : torch::nn::utils::clip_grad_norm_(all_params_, std::numeric_limits<double>::infinity());
      opt_->step();
    } else {
      r.grad_norm = std::numeric_limits<double>::quiet_NaN();
    }
    at::_amp_update_scale_(scale_, growth_tracker_, found_inf, 2.0, 0.5, options_.growth_interval);
  } else {
    loss.backward();
    if (grad_hook_) grad_hook_->after_backward(all_params_);
    r.grad_norm = options_.max_grad_norm > 0
                      ? torch::nn::utils::clip_grad_norm_(all_params_, options_.max_grad_norm)
                      : torch::nn::utils::clip_grad_norm_(all_params_, std::numeric_limits<double>::infinity());
    opt_->step();
  }
  ++steps_;
  return r;
}

}  // namespace mtpd::train

namespace mtpd::train {

namespace {
using StateMap = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>;

at::Tensor scalar_long(int64_t v) { return at::full({}, v, at::TensorOptions().dtype(at::kLong)); }
}  // namespace

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  auto& state = opt_->state();
  for (size_t i = 0; i < all_params_.size(); ++i) {
    auto it = state.find(state_key<StateMap>(all_params_[i]));
    if (it == state.end()) continue;  // no step taken for this parameter yet
    const std::string& n = param_names_[i];
    if (options_.type == "sgd") {
      auto& st = static_cast<torch::optim::SGDParamState&>(*it->second);
      if (st.momentum_buffer().defined()) out.emplace_back(n + ".momentum_buffer", st.momentum_buffer());
    } else {
      auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
      out.emplace_back(n + ".step", scalar_long(st.step()));
      out.emplace_back(n + ".exp_avg", st.exp_avg());
      out.emplace_back(n + ".exp_avg_sq", st.exp_avg_sq());
    }
  }
  if (scaled_) {
    out.emplace_back("amp.scale", scale_);
    out.emplace_back("amp.growth_tracker", growth_tracker_);
  }
  out.emplace_back("steps", scalar_long(steps_));
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& sd) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < param_names_.size(); ++i) index.emplace(param_names_[i], i);
  struct Slot {
    at::Tensor momentum, exp_avg, exp_avg_sq;
    int64_t step = -1;
  };
  std::unordered_map<size_t, Slot> slots;
  at::Tensor scale, growth;
  int64_t steps = -1;
  const std::string sgd_only = ".momentum_buffer";
  const std::vector<std::string> adam_only = {".exp_avg", ".exp_avg_sq", ".step"};
  auto ends_with = [](const std::string& s, const std::string& t) {
    return s.size() > t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  // Validate everything first, so that a bad state leaves the optimizer as it was.
  for (const auto& [key, t] : sd) {
    MTPD_CHECK_ARG(t.defined(), "optimizer state \"", key, "\" is undefined");
    if (key == "steps") {
      MTPD_CHECK_ARG(t.numel() == 1, "optimizer state \"steps\" must be a scalar");
      steps = t.to(at::kLong).item<int64_t>();
      continue;
    }
    if (key == "amp.scale" || key == "amp.growth_tracker") {
      MTPD_CHECK_ARG(options_.amp, "optimizer state has \"", key,
                     "\" (mixed precision) but this optimizer runs without amp");
      MTPD_CHECK_ARG(t.numel() == 1, "optimizer state \"", key, "\" must hold one value");
      (key == "amp.scale" ? scale : growth) = t;
      continue;
    }
    std::string suffix;
    if (ends_with(key, sgd_only)) suffix = sgd_only;
    for (const auto& s : adam_only)
      if (suffix.empty() && ends_with(key, s)) suffix = s;
    MTPD_CHECK_ARG(!suffix.empty(), "optimizer state \"", key, "\" is not a known entry (", options_.type, ")");
    const bool for_sgd = suffix == sgd_only;
    MTPD_CHECK_ARG(for_sgd == (options_.type == "sgd"), "optimizer state \"", key, "\" belongs to ",
                   for_sgd ? "sgd" : "adamw", " but this optimizer is ", options_.type);
    const std::string name = key.substr(0, key.size() - suffix.size());
    auto it = index.find(name);
    MTPD_CHECK_ARG(it != index.end(), "optimizer state \"", key, "\" names no trainable parameter \"", name, "\"");
    const at::Tensor& p = all_params_[it->second];
    Slot& slot = slots[it->second];
    if (suffix == ".step") {
      MTPD_CHECK_ARG(t.numel() == 1, "optimizer state \"", key, "\" must be a scalar");
      slot.step = t.to(at::kLong).item<int64_t>();
      continue;
    }
    MTPD_CHECK_ARG(t.sizes() == p.sizes(), "optimizer state \"", key, "\" has shape ", t.sizes(), ", the parameter ",
                   p.sizes());
    (suffix == sgd_only ? slot.momentum : suffix == ".exp_avg" ? slot.exp_avg : slot.exp_avg_sq) = t;
  }
  for (const auto& [i, slot] : slots) {
    if (options_.type == "adamw")
      MTPD_CHECK_ARG(slot.step >= 0 && slot.exp_avg.defined() && slot.exp_avg_sq.defined(), "optimizer state of \"",
                     param_names_[i], "\" is incomplete (adamw needs step, exp_avg and exp_avg_sq)");
  }
  MTPD_CHECK_ARG(!options_.amp || scale.defined() == growth.defined(),
                 "optimizer state needs both amp.scale and amp.growth_tracker");

  // Apply: parameters absent from sd have not been stepped yet (their state is cleared).
  auto& state = opt_->state();
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < all_params_.size(); ++i) {
    const at::Tensor& p = all_params_[i];
    auto key = state_key<StateMap>(p);
    auto s = slots.find(i);
    if (s == slots.end()) {
      state.erase(key);
      continue;
    }
    auto like = [&](const at::Tensor& t) { return t.to(p.device(), p.scalar_type()).clone().contiguous(); };
    if (options_.type == "sgd") {
      auto st = std::make_unique<torch::optim::SGDParamState>();
      st->momentum_buffer(like(s->second.momentum));
      state[key] = std::move(st);
    } else {
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(s->second.step);
      st->exp_avg(like(s->second.exp_avg));
      st->exp_avg_sq(like(s->second.exp_avg_sq));
      state[key] = std::move(st);
    }
  }
  // A CUDA run's loss scaler resumed on the CPU (bfloat16, no scaler) is dropped; the CPU's state
  // resumed on CUDA starts the scaler at init_scale.
  if (scale.defined() && scaled_) {
    scale_.copy_(scale.reshape({1}));
    growth_tracker_.copy_(growth.reshape({1}));
  }
  if (steps >= 0) steps_ = steps;
}

}  // namespace mtpd::train
