#include "train/amp.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "core/errors.h"

namespace mtpd::train {

bool set_autocast(c10::DeviceType type, bool enabled) {
  MTPD_CHECK_ARG(type == c10::DeviceType::CUDA || type == c10::DeviceType::CPU,
                 "mixed precision runs on CUDA or the CPU, not on ", c10::DeviceTypeName(type));
  bool prev;
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR >= 3
  prev = at::autocast::is_autocast_enabled(type);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (type == c10::DeviceType::CUDA) {
    prev = at::autocast::is_enabled();
    at::autocast::set_enabled(enabled);
  } else {
    prev = at::autocast::is_cpu_enabled();
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
  if (!enabled) at::autocast::clear_cache();
  return prev;
}

AutocastScope::AutocastScope(c10::Device device, bool enable) : type_(device.type()), on_(enable) {
  if (on_) prev_ = set_autocast(type_, true);
}

AutocastScope::~AutocastScope() {
  if (on_) set_autocast(type_, prev_);
}

}  // namespace mtpd::train
