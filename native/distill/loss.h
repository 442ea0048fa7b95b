// Distillation losses over one pair of FPN maps (student tap, teacher tap), and the
// name -> factory registry a config picks them from (mmrazor's registry of distill losses).
//
// A loss sees the student map AFTER the pair's adapter, so both maps have the same shape
// (N, C, H, W); the teacher map is detached. It returns named terms whose sum is its
// contribution (FGD returns four: fg, bg, at, gl); weights are already applied.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/registry.h"

namespace mtpd::distill {

using ImageSize = std::array<int64_t, 2>;  // (H, W), as models/detector.h
using LossTerms = std::vector<std::pair<std::string, at::Tensor>>;

// What losses need besides the two maps.
struct LossContext {
  // Per image (K_i, 4) float boxes, xyxy in the pixels of image_sizes[i] (FGD).
  std::vector<at::Tensor> boxes;
  // Per image (H, W) of the region the boxes live in: the image after resize, before padding
  // (mmdet's img_shape). FGD scales boxes by feature size / image size.
  std::vector<ImageSize> image_sizes;
};

class LossImpl : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  // s: adapted student map (N, C, H, W); t: teacher map of the same shape, detached.
  virtual LossTerms forward(const at::Tensor& s, const at::Tensor& t, const LossContext& ctx) = 0;
  // Registry name ("mse", "cwd", "fgd", "mgd", "pkd").
  virtual std::string type() const = 0;
  // Every option with its resolved value.
  virtual Json config() const = 0;
  virtual bool needs_boxes() const { return false; }
};

// What a factory knows about the pair when it builds the loss-side modules.
struct LossShape {
  int64_t channels = 0;  // teacher channels (the student is adapted to them)
  uint64_t seed = 0;     // for losses that draw random numbers (MGD), unless options say "seed"
};

using LossFactory = std::function<std::shared_ptr<LossImpl>(const Json& options, const LossShape& shape)>;

void register_loss(const std::string& type, LossFactory factory, std::string doc);
// ArgumentError naming the type and the known ones when `type` is unknown.
std::shared_ptr<LossImpl> build_loss(const std::string& type, const Json& options, const LossShape& shape);
std::vector<std::pair<std::string, std::string>> registered_losses();  // (type, doc)

struct LossRegistrar {
  LossRegistrar(const std::string& type, LossFactory f, std::string doc) {
    register_loss(type, std::move(f), std::move(doc));
  }
};

// Shared checks: both maps 4-D, same shape, floating point. `what` names the loss.
void check_pair_shapes(const at::Tensor& s, const at::Tensor& t, const std::string& what);

}  // namespace mtpd::distill

#define MTPD_REGISTER_DISTILL_LOSS(type, doc, factory) \
  static ::mtpd::distill::LossRegistrar MTPD_CONCAT(mtpd_loss_registrar_, __COUNTER__)(type, factory, doc)
