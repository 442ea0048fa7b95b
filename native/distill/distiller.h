// The distiller: which student tap meets which teacher tap, through which adapter, with which
// losses and weights (mmrazor's ConfigurableDistiller). It owns the adapters and the loss-side
// modules (GC blocks, generation blocks), one set per (student tap, teacher tap) pair; they
// train with the student and are never part of the exported student.
//
// Options (JSON), either explicit pairs:
//   {"student_channels": 64, "teacher_channels": 256, "resize": "bilinear", "seed": 7,
//    "pairs": [{"student": "p3", "teacher": "p3", "name": "p3",
//               "losses": [{"type": "fgd", "weight": 1, "options": {"alpha_fgd": 1e-3}}]}]}
// or the shorthand "taps": ["p3", "p4"] with "losses": [...] for same-named taps.
// Pair entries may override student_channels / teacher_channels / resize. Loss entries may
// carry "name" (default: the type) when one pair has two losses of one type.
//
// forward() returns named terms "distill.<pair>.<term>" ("distill.p3.mse",
// "distill.p3.fgd.fg", ...), each already weighted; their sum is the distillation loss.
//
// Alignment: given both models' layouts (each image's size after that model's resize, each
// tap's stride), every pair maps the student's map onto the teacher's grid image by image
// (the adapter's 1x1 conv, then distill/align.h: only each image's valid cells, at the per-image
// content scale), the losses read only each image's valid cells on the teacher's grid, and FGD's
// boxes (given in the student's resized pixels) are mapped into the teacher's resized pixels of
// each image with the same mapping and measured against the teacher's image sizes. When every
// image fills both maps exactly the batched code runs unchanged. Without layouts the whole
// padded maps are matched as given (the original code; the golden tests).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"
#include "distill/adapter.h"
#include "distill/loss.h"

namespace mtpd::distill {

using FeatureMap = std::map<std::string, at::Tensor>;

struct DistillOutput {
  LossTerms terms;                             // "distill.<pair>.<term>" -> weighted scalar
  at::Tensor total;                            // their sum (a 0-dim tensor)
  std::map<std::string, std::string> adapters;  // pair -> adapter kind used on this call
};

class DistillerImpl : public torch::nn::Module {
 public:
  explicit DistillerImpl(const Json& options);

  // student: taps with autograd; teacher: taps (detached here). `prefix` goes before the pair
  // name ("distill." by default; the step uses "distill.<teacher>." for several teachers).
  // student_layout / teacher_layout: both or neither (see the top of this file); with them,
  // ctx.boxes are in the pixels of student_layout->image_sizes (ctx.image_sizes, when given, must
  // be those sizes).
  DistillOutput forward(const FeatureMap& student, const FeatureMap& teacher, const LossContext& ctx,
                        const std::string& prefix = "distill.", const MapLayout* student_layout = nullptr,
                        const MapLayout* teacher_layout = nullptr);

  struct LossEntry {
    std::string name;
    double weight;
    std::shared_ptr<LossImpl> loss;
  };
  struct Pair {
    std::string name, student, teacher;
    Adapter adapter{nullptr};
    std::vector<LossEntry> losses;
  };
  const std::vector<Pair>& pairs() const { return pairs_; }
  std::vector<std::string> student_taps() const;
  std::vector<std::string> teacher_taps() const;
  bool needs_boxes() const;
  // The resolved options (every default filled in).
  Json config() const { return config_; }

 private:
  std::vector<Pair> pairs_;
  Json config_;
};
TORCH_MODULE(Distiller);

// The distiller inside a module built by the registry ("distill.Distiller"), or nullptr.
std::shared_ptr<DistillerImpl> as_distiller(const BuiltModule& built);

}  // namespace mtpd::distill
