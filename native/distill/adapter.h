// The adapter r of MTPD (Cao et al., ICML 2023, Sec. 3.1) between a student tap and a teacher
// tap, chosen from their shapes:
//   same channels, same grid   -> identity
//   channels differ            -> 1x1 conv C_S -> C_T
//   grids differ               -> the alignment of distill/align.h: each image's valid cells are
//                                 resampled bilinearly (align_corners=false) at the per-image
//                                 content scale onto its valid cells on the teacher's grid
//   both                       -> 1x1 conv, then the alignment
// The conv is fixed at construction (channels are known then); the resampling is decided on each
// call from the grids (image sizes, strides, map sizes), so a batch of another padded size still
// works. Without grids (forward(student, H, W)) the whole padded map is resized, as the original
// code did; that is also what the alignment reduces to when every image fills both maps exactly.
// Adapters train with the student and are dropped when the student is exported.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <string>

#include "distill/align.h"

namespace mtpd::distill {

class AdapterImpl : public torch::nn::Module {
 public:
  // resize: "bilinear" (default), "nearest", or "none" (a size mismatch is then an error).
  AdapterImpl(int64_t student_channels, int64_t teacher_channels, std::string resize = "bilinear");

  // (N, C_S, Hs, Ws) -> (N, C_T, H, W): the whole padded map resized.
  at::Tensor forward(const at::Tensor& student, int64_t out_h, int64_t out_w);

  // (N, C_S, Hs, Ws) on grid `from` -> (N, C_T, H_t, W_t) on grid `to`: the 1x1 conv, then the
  // alignment (align.h). ShapeError when resampling is needed and resize is "none".
  Aligned forward(const at::Tensor& student, const Grid& from, const Grid& to);

  // "identity", "conv1x1", "resize" or "conv1x1+resize" for maps of these sizes.
  std::string kind(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) const;
  // The same for a call that did (or did not) resample.
  std::string kind(bool resampled) const;
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
