// Plain torch.nn layers, buildable by name with PyTorch's keyword names. They are the
// building blocks of adapters and the smallest modules the weight I/O is tested on.
#include <torch/torch.h>

#include "core/errors.h"
#include "core/registry.h"

namespace mtpd {
namespace {

BuiltModule make_conv2d(const Json& o) {
  check_known_options(o, "nn.Conv2d",
                      {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias"});
  const int64_t in = req_int(o, "in_channels"), out = req_int(o, "out_channels");
  const int64_t k = opt_int(o, "kernel_size", 1), groups = opt_int(o, "groups", 1);
  MTPD_CHECK_ARG(in > 0 && out > 0 && k > 0, "nn.Conv2d: channels and kernel_size must be positive");
  MTPD_CHECK_ARG(groups > 0 && in % groups == 0 && out % groups == 0,
                 "nn.Conv2d: groups must divide in_channels and out_channels");
  auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k)
                                    .stride(opt_int(o, "stride", 1))
                                    .padding(opt_int(o, "padding", 0))
                                    .dilation(opt_int(o, "dilation", 1))
                                    .groups(groups)
                                    .bias(opt_bool(o, "bias", true)));
  return {conv.ptr(), [conv](const std::vector<at::Tensor>& x) mutable {
            MTPD_CHECK_SHAPE(x.size() == 1, "nn.Conv2d takes 1 input, got ", x.size());
            MTPD_CHECK_SHAPE(x[0].dim() == 4 && x[0].size(1) == conv->options.in_channels(),
                             "nn.Conv2d expects input of shape (N, ", conv->options.in_channels(),
                             ", H, W), got ", x[0].sizes());
            return std::vector<at::Tensor>{conv->forward(x[0])};
          }};
}

BuiltModule make_linear(const Json& o) {
  check_known_options(o, "nn.Linear", {"in_features", "out_features", "bias"});
  const int64_t in = req_int(o, "in_features"), out = req_int(o, "out_features");
  MTPD_CHECK_ARG(in > 0 && out > 0, "nn.Linear: in_features and out_features must be positive");
  auto lin = torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(opt_bool(o, "bias", true)));
  return {lin.ptr(), [lin](const std::vector<at::Tensor>& x) mutable {
            MTPD_CHECK_SHAPE(x.size() == 1, "nn.Linear takes 1 input, got ", x.size());
            MTPD_CHECK_SHAPE(x[0].dim() >= 1 && x[0].size(-1) == lin->options.in_features(),
                             "nn.Linear expects last dimension ", lin->options.in_features(), ", got ",
                             x[0].sizes());
            return std::vector<at::Tensor>{lin->forward(x[0])};
          }};
}

BuiltModule make_batchnorm2d(const Json& o) {
  check_known_options(o, "nn.BatchNorm2d", {"num_features", "eps", "momentum"});
  const int64_t n = req_int(o, "num_features");
  MTPD_CHECK_ARG(n > 0, "nn.BatchNorm2d: num_features must be positive");
  auto bn = torch::nn::BatchNorm2d(
      torch::nn::BatchNorm2dOptions(n).eps(opt_number(o, "eps", 1e-5)).momentum(opt_number(o, "momentum", 0.1)));
  return {bn.ptr(), [bn](const std::vector<at::Tensor>& x) mutable {
            MTPD_CHECK_SHAPE(x.size() == 1 && x[0].dim() == 4 && x[0].size(1) == bn->options.num_features(),
                             "nn.BatchNorm2d expects one input of shape (N, ", bn->options.num_features(),
                             ", H, W)");
            return std::vector<at::Tensor>{bn->forward(x[0])};
          }};
}

MTPD_REGISTER_MODULE("nn.Conv2d", "2-D convolution (torch.nn.Conv2d keywords)", make_conv2d);
MTPD_REGISTER_MODULE("nn.Linear", "fully connected layer (torch.nn.Linear keywords)", make_linear);
MTPD_REGISTER_MODULE("nn.BatchNorm2d", "batch normalization (torch.nn.BatchNorm2d keywords)", make_batchnorm2d);

}  // namespace
}  // namespace mtpd
