#include "models/memory_format.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "core/errors.h"

namespace mtpd {

at::MemoryFormat parse_memory_format(const std::string& name, const std::string& what) {
  if (name == "contiguous") return at::MemoryFormat::Contiguous;
  if (name == "channels_last") return at::MemoryFormat::ChannelsLast;
  throw ArgumentError(fmt(what, ": memory format must be \"contiguous\" or \"channels_last\", got \"", name, "\""));
}

void to_memory_format(torch::nn::Module& module, at::MemoryFormat format) {
  at::NoGradGuard no_grad;
  auto convert = [&](at::Tensor& t) {
    // set_data keeps the tensor object (and its requires_grad) and swaps its storage for the
    // re-laid-out copy: (C_out, C_in, kH, kW) with strides of `format`.
    if (t.defined() && t.dim() == 4 && !t.is_contiguous(format)) t.set_data(t.contiguous(format));
  };
  for (auto& p : module.parameters(/*recurse=*/true)) convert(p);
  for (auto& b : module.buffers(/*recurse=*/true)) convert(b);
}

std::string memory_format_name(const torch::nn::Module& module) {
  bool all_nchw = true, all_nhwc = true;
  for (const auto& p : module.parameters(/*recurse=*/true)) {
    if (p.dim() != 4) continue;
    all_nchw = all_nchw && p.is_contiguous(at::MemoryFormat::Contiguous);
    all_nhwc = all_nhwc && p.is_contiguous(at::MemoryFormat::ChannelsLast);
  }
  if (all_nchw) return "contiguous";
  return all_nhwc ? "channels_last" : "mixed";
}

}  // namespace mtpd
