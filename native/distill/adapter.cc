#include "distill/adapter.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace mtpd::distill {

AdapterImpl::AdapterImpl(int64_t student_channels, int64_t teacher_channels, std::string resize)
    : cs_(student_channels), ct_(teacher_channels), resize_(std::move(resize)) {
  MTPD_CHECK_ARG(cs_ > 0 && ct_ > 0, "adapter: channels must be positive, got ", cs_, " -> ", ct_);
  MTPD_CHECK_ARG(resize_ == "bilinear" || resize_ == "nearest" || resize_ == "none",
                 "adapter: \"resize\" must be \"bilinear\", \"nearest\" or \"none\", got \"", resize_, "\"");
  if (cs_ != ct_) conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(cs_, ct_, 1)));
}

std::string AdapterImpl::kind(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) const {
  return kind(in_h != out_h || in_w != out_w);
}

std::string AdapterImpl::kind(bool resize) const {
  if (has_conv()) return resize ? "conv1x1+resize" : "conv1x1";
  return resize ? "resize" : "identity";
}

at::Tensor AdapterImpl::forward(const at::Tensor& student, int64_t out_h, int64_t out_w) {
  MTPD_CHECK_SHAPE(student.dim() == 4 && student.size(1) == cs_, "adapter: expected a student map (N, ", cs_,
                   ", H, W), got ", student.sizes());
  at::Tensor x = has_conv() ? conv->forward(student) : student;  // (N, C_T, Hs, Ws)
  if (x.size(2) == out_h && x.size(3) == out_w) return x;
  MTPD_CHECK_SHAPE(resize_ != "none", "adapter: student map is ", x.size(2), "x", x.size(3), " but the teacher's is ",
                   out_h, "x", out_w, " and resize is \"none\"");
  if (resize_ == "nearest") return at::upsample_nearest2d(x, {out_h, out_w});
  return at::upsample_bilinear2d(x, {out_h, out_w}, /*align_corners=*/false);  // (N, C_T, H, W)
}

Aligned AdapterImpl::forward(const at::Tensor& student, const Grid& from, const Grid& to) {
  MTPD_CHECK_SHAPE(student.dim() == 4 && student.size(1) == cs_, "adapter: expected a student map (N, ", cs_,
                   ", H, W), got ", student.sizes());
  const at::Tensor x = has_conv() ? conv->forward(student) : student;  // (N, C_T, Hs, Ws)
  Aligned a = align_map(x, from, to, resize_ == "nearest" ? "nearest" : "bilinear");  // (N, C_T, H_t, W_t)
  MTPD_CHECK_SHAPE(resize_ != "none" || !a.resampled, "adapter: the student's map (", student.size(2), "x",
                   student.size(3), ", stride ", from.stride, ") must be resampled onto the teacher's (", to.height,
                   "x", to.width, ", stride ", to.stride, ") but resize is \"none\"");
  return a;
}

}  // namespace mtpd::distill
