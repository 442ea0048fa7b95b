#include "dist/grad_sync.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <exception>
#include <map>

#include "core/errors.h"
#include "dist/process_group.h"

namespace mtpd::dist {

struct GradSync::State {
  struct Bucket {
    at::Tensor flat;              // (numel,) this bucket's gradients, back to back
    std::vector<size_t> params;   // indices into the parameter list
    int64_t pending = 0;          // parameters whose gradient has not arrived yet
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::mutex mu;
  ProcessGroup* group = nullptr;
  bool armed = false;
  double weight = 1.0;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;   // per parameter
  std::vector<int64_t> offset_of;  // per parameter, in its bucket's flat buffer
  std::vector<int64_t> numel_of;
  std::vector<bool> got;
  size_t next_launch = 0;
  std::exception_ptr error;

  // Starts the allreduce of every full bucket from next_launch on, in index order (mu held).
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      std::vector<at::Tensor> one{buckets[next_launch].flat};
      buckets[next_launch].work = group->allreduce_async(one);
      ++next_launch;
    }
  }

  void on_grad(size_t i, const at::Tensor& g) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || got[i] || error) return;
    try {
      Bucket& b = buckets[bucket_of[i]];
      at::Tensor slot = b.flat.narrow(0, offset_of[i], numel_of[i]);
      at::mul_out(slot, g.reshape({-1}).to(slot.scalar_type()), weight);
      got[i] = true;
      if (--b.pending == 0) launch_ready();
    } catch (...) {
      error = std::current_exception();
    }
  }
};

GradSync::GradSync(std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes)
    : group_(std::move(group)), bucket_bytes_(bucket_bytes), state_(std::make_shared<State>()) {
  MTPD_CHECK_ARG(group_, "gradient sync: no process group");
  MTPD_CHECK_ARG(bucket_bytes_ > 0, "gradient sync: bucket size must be > 0 bytes, got ", bucket_bytes_);
  weight_ = 1.0 / group_->size();
  state_->group = group_.get();
}

GradSync::~GradSync() {
  for (size_t i = 0; i < params_.size(); ++i) {
    try {
      params_[i].remove_hook(hook_handles_[i]);
    } catch (...) {
    }
  }
}

void GradSync::set_weight(double w) {
  MTPD_CHECK_ARG(w >= 0 && w <= 1, "gradient sync: weight must be in [0, 1], got ", w);
  weight_ = w;
}

std::vector<int64_t> GradSync::bucket_sizes() const {
  std::vector<int64_t> out;
  for (const auto& b : state_->buckets) out.push_back(b.flat.numel());
  return out;
}

void GradSync::build(const std::vector<at::Tensor>& params) {
  for (size_t i = 0; i < params_.size(); ++i) params_[i].remove_hook(hook_handles_[i]);
  params_.clear();
  hook_handles_.clear();
  State& st = *state_;
  st.buckets.clear();
  const size_t n = params.size();
  st.bucket_of.assign(n, 0);
  st.offset_of.assign(n, 0);
  st.numel_of.assign(n, 0);
  // Reverse order: the head's gradients come first in backward. One open bucket per
  // (device, dtype); a bucket closes once it holds bucket_bytes.
  std::map<std::pair<std::string, int>, size_t> open;
  std::vector<int64_t> sizes;
  for (size_t k = n; k-- > 0;) {
    const at::Tensor& p = params[k];
    const auto key = std::make_pair(p.device().str(), static_cast<int>(p.scalar_type()));
    auto it = open.find(key);
    if (it == open.end()) {
      st.buckets.emplace_back();
      sizes.push_back(0);
      it = open.emplace(key, st.buckets.size() - 1).first;
    }
    const size_t b = it->second;
    st.bucket_of[k] = b;
    st.offset_of[k] = sizes[b];
    st.numel_of[k] = p.numel();
    sizes[b] += p.numel();
    st.buckets[b].params.push_back(k);
    if (sizes[b] * static_cast<int64_t>(p.element_size()) >= bucket_bytes_) open.erase(it);
  }
  for (size_t b = 0; b < st.buckets.size(); ++b) {
    const at::Tensor& first = params[st.buckets[b].params.front()];
    st.buckets[b].flat = at::zeros({sizes[b]}, first.options().requires_grad(false));
  }
  std::shared_ptr<State> shared = state_;
  for (size_t k = 0; k < n; ++k) {
    params_.push_back(params[k]);
    hook_handles_.push_back(params[k].register_hook([shared, k](const at::Tensor& g) { shared->on_grad(k, g); }));
  }
}

void GradSync::before_backward(const std::vector<at::Tensor>& params) {
  bool same = params.size() == params_.size();
  for (size_t i = 0; same && i < params.size(); ++i) same = params[i].is_same(params_[i]);
  if (!same) build(params);
  std::lock_guard<std::mutex> lock(state_->mu);
  State& st = *state_;
  for (auto& b : st.buckets) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.work.reset();
  }
  st.got.assign(params.size(), false);
  st.next_launch = 0;
  st.error = nullptr;
  st.weight = weight_;
  st.armed = true;
}

void GradSync::after_backward(const std::vector<at::Tensor>& params) {
  State& st = *state_;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.armed = false;
    if (st.error) std::rethrow_exception(st.error);
    // Parameters backward did not reach count as zeros; every bucket starts, in order.
    for (size_t b = st.next_launch; b < st.buckets.size(); ++b) {
      for (size_t k : st.buckets[b].params)
        if (!st.got[k]) {
          st.buckets[b].flat.narrow(0, st.offset_of[k], st.numel_of[k]).zero_();
          st.got[k] = true;
        }
      st.buckets[b].pending = 0;
    }
    st.launch_ready();
  }
  for (size_t b = 0; b < st.buckets.size(); ++b) group_->wait(st.buckets[b].work, fmt("gradient allreduce (bucket ", b, ")"));
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < params_.size(); ++k) {
    at::Tensor p = params_[k];
    at::Tensor sum = st.buckets[st.bucket_of[k]].flat.narrow(0, st.offset_of[k], st.numel_of[k]).view(p.sizes());
    at::Tensor& grad = p.mutable_grad();
    if (grad.defined())
      grad.copy_(sum);
    else
      grad = sum.clone();
  }
}

void GradSync::broadcast(std::vector<at::Tensor>& params, int root) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> data;
  for (auto& p : params) data.push_back(p.detach());
  group_->broadcast(data, root);
}

}  // namespace mtpd::dist
