// Adaptation cost between two frozen models at one FPN level (MTPD, Cao et al. ICML 2023,
// Sec. 3.2; method.md 1.3): fit a linear map r_{A->B} (a 1x1 conv) from A's features to B's on
// training features, then score it as the mean squared error over B's elements on held-out
// features.
//
// What is fitted is what the adapter distils: A's maps resampled onto B's grid with the
// alignment of distill/align.h (the caller does that, see the masks below), then the 1x1 conv.
// A 1x1 conv commutes with bilinear resampling (the weights sum to one and act per channel), so
// fitting the conv after the resampling equals the adapter's conv-then-resample. With masks
// (N, 1, H, W) per batch (1 on each image's valid cells of B's grid), A's maps must already be on
// B's grid, and only the valid positions count, in the fit and in both MSEs. Without masks
// every position counts and A's map, when its size differs, is resized bilinearly
// (align_corners=false) onto B's whole map, as the adapter does without layouts.
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
  int64_t train_pixels = 0;  // positions counted (valid ones with masks)
  int64_t val_pixels = 0;
  double ridge = 0;      // closed-form: the ridge strength used
  at::Tensor weight;  // (C_B, C_A)
  at::Tensor bias;    // (C_B)
};

// xs[i]: (N, C_A, h, w) from model A; ys[i]: (N, C_B, H, W) from model B, for the same images;
// masks (optional, both or neither): (N, 1, H, W) per batch, and then every x is (N, C_A, H, W).
LinearFitResult fit_linear_map(const std::vector<at::Tensor>& train_x, const std::vector<at::Tensor>& train_y,
                               const std::vector<at::Tensor>& val_x, const std::vector<at::Tensor>& val_y,
                               const LinearFitOptions& options, const std::vector<at::Tensor>* train_mask = nullptr,
                               const std::vector<at::Tensor>* val_mask = nullptr);

}  // namespace mtpd
