// The memory format of a model's convolution weights: contiguous (NCHW, torchvision's default) or
// channels_last (NHWC). A convolution whose weight is channels_last gives a channels_last output
// (cuDNN and oneDNN both choose the format from the input or the weight), and every later layer
// keeps it, so converting the weights is enough to run the whole network channels_last; results
// differ from the contiguous run by float rounding only. Loading weights copies into the existing
// tensors and moving the model to another device preserves the format.
#pragma once

#include <torch/nn/module.h>

#include <string>

namespace mtpd {

// "contiguous" or "channels_last"; ArgumentError naming `what` for anything else.
at::MemoryFormat parse_memory_format(const std::string& name, const std::string& what);

// Every 4-D parameter and buffer of `module` (convolution weights: (C_out, C_in, kH, kW)) in
// `format`, in place (the same tensors, so optimizers and references stay valid).
void to_memory_format(torch::nn::Module& module, at::MemoryFormat format);

// The format the 4-D parameters of `module` are in: "channels_last" when every one is laid out
// so and some differ from NCHW (a 1x1 kernel is both), "contiguous" when every one is NCHW, else
// "mixed".
std::string memory_format_name(const torch::nn::Module& module);

}  // namespace mtpd
