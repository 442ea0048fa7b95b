// Mixed precision: autocast for the calling thread on a model's device, as torch.autocast does
// it: CUDA computes its autocast ops (convolutions, matmuls, linear layers) in float16, the CPU in
// bfloat16 (its default autocast type; native on CPUs with AVX-512 BF16 or AMX, emulated by
// oneDNN on other AVX-512 CPUs, slow elsewhere). Everything else, the losses among it, stays in
// float32. Loss scaling is CUDA's alone (float16's range); bfloat16 has float32's exponent range.
#pragma once

#include <c10/core/Device.h>

namespace mtpd::train {

// Autocast on/off on `type` (kCUDA or kCPU) for the calling thread (libtorch 1.13 and 2.x
// spellings); returns the previous state. Clears the autocast weight cache when turning it off.
bool set_autocast(c10::DeviceType type, bool enabled);

// Autocast on `device`'s type for the scope when `enable`; the previous state restored and the
// cast cache cleared on every exit path. Does nothing when `enable` is false.
class AutocastScope {
 public:
  AutocastScope(c10::Device device, bool enable);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type_;
  bool on_, prev_ = false;
};

// Whether the optimizer scales the loss under mixed precision on this device (CUDA's float16).
inline bool amp_scales_loss(c10::Device device) { return device.is_cuda(); }

}  // namespace mtpd::train
