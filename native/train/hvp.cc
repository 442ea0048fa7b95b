#include "train/hvp.h"

#include <torch/autograd.h>
#include <torch/nn/module.h>

#include "core/errors.h"
#include "models/detector.h"

namespace mtpd::train {

HvpResult hessian_vector_product(const at::Tensor& loss, const std::vector<at::Tensor>& params,
                                 const std::vector<at::Tensor>& vectors) {
  MTPD_CHECK_ARG(params.size() == vectors.size(), "hvp: ", params.size(), " parameters but ", vectors.size(), " vectors");
  MTPD_CHECK_ARG(!params.empty(), "hvp: no parameters");
  MTPD_CHECK_SHAPE(loss.numel() == 1, "hvp: the loss must be a scalar, got ", loss.sizes());
  for (size_t i = 0; i < params.size(); ++i)
    MTPD_CHECK_SHAPE(params[i].sizes() == vectors[i].sizes(), "hvp: vectors[", i, "] has shape ", vectors[i].sizes(),
                     " but its parameter has ", params[i].sizes());
  HvpResult r;
  // g_i = dL/dθ_i with its own graph (create_graph), so g . v can be differentiated again.
  std::vector<at::Tensor> grads = torch::autograd::grad({loss.reshape({})}, params, {}, /*retain_graph=*/true,
                                                        /*create_graph=*/true, /*allow_unused=*/true);
  at::Tensor dot;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!grads[i].defined()) continue;
    at::Tensor v = vectors[i].to(grads[i].options());
    at::Tensor term = (grads[i] * v).sum();
    dot = dot.defined() ? dot + term : term;
  }
  std::vector<at::Tensor> hv(params.size());
  if (dot.defined() && dot.requires_grad())
    hv = torch::autograd::grad({dot}, params, {}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < params.size(); ++i) {
    r.gradient.push_back(grads[i].defined() ? grads[i].detach() : at::zeros_like(params[i]).detach());
    r.product.push_back(hv[i].defined() ? hv[i].detach() : at::zeros_like(params[i]).detach());
  }
  return r;
}

DetectionHvp detection_hvp(Detector& det, const std::vector<at::Tensor>& images, const std::vector<Target>& targets,
                           const std::vector<std::string>& names, const std::vector<at::Tensor>& vectors) {
  MTPD_CHECK_ARG(!names.empty(), "hvp: names is empty (name at least one parameter)");
  MTPD_CHECK_ARG(names.size() == vectors.size(), "hvp: ", names.size(), " names but ", vectors.size(), " vectors");
  const auto named = det.named_parameters(/*recurse=*/true);
  std::vector<at::Tensor> params;
  for (const auto& n : names) {
    const at::Tensor* p = named.find(n);
    MTPD_CHECK_ARG(p != nullptr, "hvp: \"", n, "\" is not a parameter of the model");
    MTPD_CHECK_ARG(p->requires_grad(), "hvp: parameter \"", n, "\" is frozen (requires_grad is false)");
    params.push_back(*p);
  }
  std::vector<at::Tensor> vs;
  for (size_t i = 0; i < vectors.size(); ++i) {
    MTPD_CHECK_SHAPE(vectors[i].sizes() == params[i].sizes(), "hvp: the vector for \"", names[i], "\" has shape ",
                     vectors[i].sizes(), " but the parameter has ", params[i].sizes());
    vs.push_back(vectors[i].to(params[i].options()));
  }
  at::AutoGradMode grad_mode(true);
  RunOptions what;
  what.losses = true;
  what.twice_differentiable = true;
  DetectorOutput out = det.run(images, &targets, what);
  MTPD_CHECK_ARG(!out.losses.empty(), "hvp: the detector returned no losses");
  at::Tensor total;
  DetectionHvp r;
  for (auto& [k, v] : out.losses) {
    r.losses[k] = v.detach().to(at::kCPU, at::kDouble).item<double>();
    total = total.defined() ? total + v.to(at::kFloat) : v.to(at::kFloat);
  }
  HvpResult h = hessian_vector_product(total, params, vs);
  r.names = names;
  r.gradient = std::move(h.gradient);
  r.product = std::move(h.product);
  return r;
}

}  // namespace mtpd::train
