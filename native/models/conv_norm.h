// A convolution followed by its norm layer, with the norm folded into the convolution where the
// norm is an affine map: FrozenBatchNorm2d always, BatchNorm2d in eval mode. Then
//   norm(conv(x, W)) = conv(x, W * s) + t,  s = weight / sqrt(running_var + eps),  t = bias - running_mean * s
// (s, t: (C_out)), one pass over the output instead of three, and no (N, C_out, H, W) temporaries
// for the scale and shift. Folding applies where the convolution's weight is not being trained
// (frozen stages, inference, teachers); a weight that takes gradients runs conv then norm, so the
// backward pass does not hold a folded copy of every trained weight. The folded weight is computed
// on every call with tensor ops, so gradients reach the input and the norm's weight and bias (and
// second derivatives, for Hessian products) as without folding; numerics differ from
// conv-then-norm by float rounding only (about 1e-6 relative).
// MTPD_FOLD_NORM=0 in the environment turns folding off (conv then norm, torchvision's op order).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/conv.h>

#include "models/frozen_batch_norm.h"

namespace mtpd {

// norm(conv(x)): x (N, C_in, H, W) -> (N, C_out, H', W'). `conv` has no bias (torchvision's ResNet).
at::Tensor conv_norm(torch::nn::Conv2d& conv, const NormLayer& norm, const at::Tensor& x);

// Whether conv_norm folds (MTPD_FOLD_NORM unset or not "0"), read on each call.
bool fold_norm_enabled();

}  // namespace mtpd
