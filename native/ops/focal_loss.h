// Sigmoid focal loss (Lin et al. 2017, eq. 5), torchvision.ops.sigmoid_focal_loss:
//   FL = alpha_t * (1 - p_t)^gamma * BCE(x, t),  p = sigmoid(x),  p_t = p t + (1 - p)(1 - t),
//   alpha_t = alpha t + (1 - alpha)(1 - t)  (alpha < 0: no weighting).
// Two forms:
//  - sigmoid_focal_loss: torchvision's op sequence on a dense target, element-wise ("none").
//  - sigmoid_focal_loss_sum: the sum over the anchors of a detector, each row's target given as a
//    class index (one-hot), which is what RetinaNet's classification loss needs. On the CPU (float
//    and double) one fused pass computes the loss and its gradient together and keeps only the
//    gradient for the backward pass: no dense one-hot target, none of the ~10 logits-sized
//    temporaries torchvision's sequence makes and saves. Elsewhere (CUDA, reduced precision) and
//    when `twice_differentiable` is set (or MTPD_FUSED_LOSS=0 in the environment) it is
//    torchvision's sequence on the selected rows.
//    The fused value equals torchvision's up to float rounding (it sums in double, in fixed blocks,
//    so the result does not depend on the thread count). Its gradient has no derivative of its own:
//    a Hessian product (create_graph) through it is refused with an error naming this flag.
#pragma once

#include <ATen/core/Tensor.h>

namespace mtpd::ops {

// inputs, targets: same shape, floating. Element-wise loss.
at::Tensor sigmoid_focal_loss(const at::Tensor& inputs, const at::Tensor& targets, double alpha, double gamma);

// logits: (A, K) floating; classes: (A) int64: >= 0 the row's class (target one-hot at it),
// -1 background (all-zero target), -2 ignored (the row adds nothing and gets no gradient).
// Returns a 0-d tensor in logits' dtype: the loss summed over the rows that are not ignored.
at::Tensor sigmoid_focal_loss_sum(const at::Tensor& logits, const at::Tensor& classes, double alpha, double gamma,
                                  bool twice_differentiable = false);

}  // namespace mtpd::ops
