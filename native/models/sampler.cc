#include "models/sampler.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/errors.h"

namespace mtpd {

BalancedPositiveNegativeSampler::BalancedPositiveNegativeSampler(int64_t batch_size_per_image, double positive_fraction)
    : batch_size_(batch_size_per_image), positive_fraction_(positive_fraction) {
  MTPD_CHECK_ARG(batch_size_ > 0, "sampler: batch_size_per_image must be positive, got ", batch_size_);
  MTPD_CHECK_ARG(positive_fraction_ >= 0 && positive_fraction_ <= 1, "sampler: positive_fraction must be in 0..1, got ",
                 positive_fraction_);
}

std::vector<std::pair<at::Tensor, at::Tensor>> BalancedPositiveNegativeSampler::operator()(
    const std::vector<at::Tensor>& labels) const {
  std::vector<std::pair<at::Tensor, at::Tensor>> out;
  for (const auto& l : labels) {
    at::Tensor positive = (l >= 1).nonzero().select(1, 0);
    at::Tensor negative = (l == 0).nonzero().select(1, 0);
    // int(batch_size_per_image * positive_fraction)
    const auto max_pos = static_cast<int64_t>(static_cast<double>(batch_size_) * positive_fraction_);
    const int64_t num_pos = std::min(positive.numel(), max_pos);
    const int64_t num_neg = std::min(negative.numel(), batch_size_ - num_pos);
    at::Tensor perm1 = at::randperm(positive.numel(), positive.options()).slice(0, 0, num_pos);
    at::Tensor perm2 = at::randperm(negative.numel(), negative.options()).slice(0, 0, num_neg);
    at::Tensor pos_mask = at::zeros(l.sizes(), l.options().dtype(at::kBool));
    at::Tensor neg_mask = at::zeros(l.sizes(), l.options().dtype(at::kBool));
    pos_mask.index_fill_(0, positive.index_select(0, perm1), true);
    neg_mask.index_fill_(0, negative.index_select(0, perm2), true);
    out.emplace_back(pos_mask, neg_mask);
  }
  return out;
}

}  // namespace mtpd
