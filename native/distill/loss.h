// Distillation losses over one pair of FPN maps (student tap, teacher tap), and the
// name -> factory registry a config picks them from (mmrazor's registry of distill losses).
//
// A loss sees the student map AFTER the pair's adapter, so both maps have the same shape
// (N, C, H, W) on the teacher's grid; the teacher map is detached. It returns named terms whose
// sum is its contribution (FGD returns four: fg, bg, at, gl); weights are already applied.
//
// Padding is never distilled: when LossContext::valid is given, image i's content is the
// top-left valid[i] = (h_i, w_i) cells of its map and every loss reads only those cells
// (mse and pkd over the valid positions of the whole batch, cwd, fgd and mgd image by image on
// each image's valid crop, with the batch reductions of the original code). When it is empty,
// every cell is content (each image fills its map exactly): the batched code of the original
// authors, unchanged.
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
  // (mmdet's img_shape). FGD scales boxes by feature size / image size, where the feature size
  // is that of the image's valid cells (the whole map when `valid` is empty).
  std::vector<ImageSize> image_sizes;
  // Per image (rows, cols) of valid cells at the top-left of its map; empty: every cell.
  std::vector<ImageSize> valid;
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

// Shared checks: both maps 4-D, same shape, floating point; ctx.valid (when given) one entry per
// image, each non-empty and inside the map. `what` names the loss.
void check_pair_shapes(const at::Tensor& s, const at::Tensor& t, const std::string& what);
void check_valid(const at::Tensor& s, const LossContext& ctx, const std::string& what);

// Image i's valid crop of x (N, C, H, W) -> (1, C, h_i, w_i) (the whole map when ctx.valid is empty).
at::Tensor valid_crop(const at::Tensor& x, const LossContext& ctx, int64_t i);
// Every valid position of the batch as a column: (N, C, H, W) -> (C, sum_i h_i w_i).
at::Tensor valid_columns(const at::Tensor& x, const LossContext& ctx);
// The context of image i's valid crop alone: its boxes and image size (what ctx has of them);
// no `valid`, since every cell of the crop is content.
LossContext image_context(const LossContext& ctx, int64_t i);

}  // namespace mtpd::distill

#define MTPD_REGISTER_DISTILL_LOSS(type, doc, factory) \
  static ::mtpd::distill::LossRegistrar MTPD_CONCAT(mtpd_loss_registrar_, __COUNTER__)(type, factory, doc)
