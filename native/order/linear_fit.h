// Adaptation cost between two frozen models at one FPN level (MTPD, Cao et al. ICML 2023,
// Sec. 3.2; method.md 1.3): fit a linear map r_{A->B} (a 1x1 conv, applied after bilinear
// upsampling when A's map is smaller than B's) from A's features to B's on training features,
// then score it as the mean squared error over B's elements on held-out features.
//
// Upsampling then a 1x1 conv equals a 1x1 conv then upsampling (bilinear weights sum to one and
// act per channel), so the map is fitted on resized inputs without loss of generality. When A's
// map is larger than B's (A run at a higher resolution), it is average-pooled to B's size.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace mtpd {

struct LinearFitOptions {
  std::string fitter = "closed-form";  // "closed-form" | "sgd"
  // closed-form: ridge strength relative to the mean feature variance (scale-free); negative
  // means "auto": chosen from a grid by the error on held-out training batches.
  double ridge = -1;
  // sgd: the paper's way, a 1x1 conv trained by gradient descent on the training batches.
  std::string optimizer = "adam";  // "adam" | "sgd"
  double lr = 1e-2;
  double momentum = 0.9;
  int64_t steps = 200;
  uint64_t seed = 0;
};

struct LinearFitResult {
  double val_mse = 0;    // the adaptation cost at this level
  double train_mse = 0;  // fit quality on the training batches
  int64_t train_pixels = 0;
  int64_t val_pixels = 0;
  double ridge = 0;      // closed-form: the ridge strength used
  at::Tensor weight;  // (C_B, C_A)
  at::Tensor bias;    // (C_B)
};

// xs[i]: (N, C_A, h, w) from model A; ys[i]: (N, C_B, H, W) from model B, for the same images.
LinearFitResult fit_linear_map(const std::vector<at::Tensor>& train_x, const std::vector<at::Tensor>& train_y,
                               const std::vector<at::Tensor>& val_x, const std::vector<at::Tensor>& val_y,
                               const LinearFitOptions& options);

}  // namespace mtpd
