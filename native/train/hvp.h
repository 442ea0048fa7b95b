// Hessian-vector products by double backward (Pearlmutter 1994): with g = dL/dθ built with
// create_graph, Hv = d(g . v)/dθ, at the cost of about two backward passes and without ever
// forming H. Used by the sharpness analysis (power iteration for the largest eigenvalue of the
// detection loss's Hessian, src/analyze/sharpness.ts).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace mtpd {

class Detector;
struct Target;

namespace train {

struct HvpResult {
  std::vector<at::Tensor> gradient;  // dL/dθ_i, each shaped as params[i] (zeros where L does not depend on it)
  std::vector<at::Tensor> product;   // (H v)_i, each shaped as params[i]
};

// `loss`: a scalar with autograd history; `params`: leaf tensors requiring grad; `vectors[i]`
// shaped as params[i]. ShapeError names vectors[i] when a shape differs.
HvpResult hessian_vector_product(const at::Tensor& loss, const std::vector<at::Tensor>& params,
                                 const std::vector<at::Tensor>& vectors);

struct DetectionHvp {
  std::map<std::string, double> losses;  // the detector's named losses at θ
  std::vector<std::string> names;        // the parameters, as asked
  std::vector<at::Tensor> gradient;      // on the model's device
  std::vector<at::Tensor> product;
};

// H v of the detection loss (the sum of the detector's losses) on images/targets, in the
// model's current mode (eval mode: BatchNorm on its running statistics), with respect to the
// named parameters (`names`, dotted as in the state dict) along `vectors` (CPU or device,
// shaped as the parameters). ArgumentError names an unknown or frozen parameter.
DetectionHvp detection_hvp(Detector& det, const std::vector<at::Tensor>& images,
                           const std::vector<Target>& targets, const std::vector<std::string>& names,
                           const std::vector<at::Tensor>& vectors);

}  // namespace train
}  // namespace mtpd
