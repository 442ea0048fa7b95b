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
#include <utility>
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

// The closed-form fitter in pieces, for features streamed batch by batch (the cost matrix reads
// them from disk, so its memory does not grow with the number of images). Summing the moments of
// the batches in order, solving, and summing the scores of the batches gives exactly what
// fit_linear_map's closed form gives on the same batches.

// First and second moments of one batch in float64: sums of x (C_A), y (C_B), x x^T (C_A, C_A),
// x y^T (C_A, C_B), |y|^2 and the number of positions (valid ones with a mask).
struct LinearMoments {
  at::Tensor sx, sy, sxx, sxy;
  double syy = 0, n = 0;
};
// x (N, C_A, h, w), y (N, C_B, H, W), mask (N, 1, H, W) or undefined (then x is resized onto y).
LinearMoments linear_moments(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask);

// Ridge least squares from summed moments: lambda relative to the mean feature variance. With
// `held` (moments of held-out training batches) lambda is chosen from fit_linear_map's grid by
// the held-out error and the map refitted on fit + held. Returns weight (C_B, C_A) and bias
// (C_B) in float64, the ridge used, and the map's sum of squared errors on all the training
// moments (fit + held), computed from the moments: the training error needs no second pass over
// the training batches.
struct LinearSolution {
  at::Tensor weight, bias;
  double ridge = 0;
  double pixels = 0;
  double train_se = 0;
};
LinearSolution solve_linear_moments(const LinearMoments& fit, const LinearMoments* held, double ridge);

// Sum of squared errors of (weight, bias) on one batch and the number of elements of y counted.
std::pair<double, int64_t> linear_score(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask,
                                        const at::Tensor& weight, const at::Tensor& bias);

}  // namespace mtpd
