// The adapter r of MTPD (Cao et al., ICML 2023, Sec. 3.1) between a student tap and a teacher
// tap, chosen from their shapes:
//   same channels, same size   -> identity
//   channels differ            -> 1x1 conv C_S -> C_T
//   size differs               -> bilinear resize to the teacher's (H, W), align_corners=false
//   both                       -> 1x1 conv, then the resize
// The conv is fixed at construction (channels are known then); the resize is decided on each
// call from the maps' sizes, so a batch of another padded size still works. Adapters train with
// the student and are dropped when the student is exported.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <string>

namespace mtpd::distill {

class AdapterImpl : public torch::nn::Module {
 public:
  // resize: "bilinear" (default), "nearest", or "none" (a size mismatch is then an error).
  AdapterImpl(int64_t student_channels, int64_t teacher_channels, std::string resize = "bilinear");

  // (N, C_S, Hs, Ws) -> (N, C_T, H, W).
  at::Tensor forward(const at::Tensor& student, int64_t out_h, int64_t out_w);

  // "identity", "conv1x1", "resize" or "conv1x1+resize" for maps of these sizes.
  std::string kind(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) const;
  bool has_conv() const { return !conv.is_empty(); }
  int64_t student_channels() const { return cs_; }
  int64_t teacher_channels() const { return ct_; }
  const std::string& resize_mode() const { return resize_; }

  torch::nn::Conv2d conv{nullptr};

 private:
  int64_t cs_, ct_;
  std::string resize_;
};
TORCH_MODULE(Adapter);

}  // namespace mtpd::distill
