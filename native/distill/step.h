// The distillation step (MTPD, method.md 1.2 and 1.1): student detection losses plus the
// weighted distillation losses of one or several frozen teachers, ONE backward and ONE
// optimizer over the student and every distiller (adapters, GC blocks, generation blocks).
//
// Teachers are frozen when the step is built (requires_grad false on every parameter) and put
// in eval mode on every step, whatever the caller did to them in between (the original MTPD
// code let Swin's drop path run in train mode; we do not). Each teacher runs at its own input
// resolution: its own transform (min_size / max_size) resizes the batch.
//
// Alignment (distill/align.h): the step knows every model's per-image resized sizes (the
// student's and a live teacher's from their runs; a cached teacher's from its own eval-mode
// resize rule, Detector::eval_image_sizes, or as given with the cache) and every tap's stride
// (Detector::feature_strides, or StepTeacher::strides for a teacher without a model). Each
// pair's adapter maps each image's valid student cells onto that image's valid cells on the
// teacher's grid, the losses never read padding, and FGD's boxes go from the student's resized
// pixels into the teacher's with the same mapping. Cached and live teachers give the same sizes.
//
// Several teachers (ensemble):
//   "sum" | "mean": every teacher's losses at once ("distill.<teacher>.<pair>.<term>"), summed
//                   or averaged, each also scaled by its own weight, one distiller per teacher;
//   "maps":         the paper's ensemble baseline: every teacher's maps aligned onto the FIRST
//                   teacher's grid with the same mapping and averaged on the valid cells
//                   (weighted by the teachers' weights, normalized to sum 1); the student distils
//                   from that one map through the first teacher's distiller alone
//                   ("distill.<pair>.<term>"), so the distillation weight is one teacher's. The
//                   other teachers need no distiller, and every teacher must have the first
//                   one's channels and its distiller's teacher taps.
// One teacher: "distill.<pair>.<term>", the single-teacher direct distillation of each MTPD stage.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "distill/distiller.h"
#include "models/detector.h"
#include "train/optimizer.h"

namespace mtpd::distill {

struct StepTeacher {
  std::string name;
  std::shared_ptr<Detector> model;  // may be null when every step passes cached features
  std::shared_ptr<DistillerImpl> distiller;  // may be null for every teacher but the first under "maps"
  double weight = 1.0;
  // tap -> stride; required when model is null (otherwise the model's feature strides).
  std::map<std::string, int64_t> strides;
};

struct StepOptions {
  std::string ensemble = "sum";  // "sum" | "mean" | "maps" over teachers (see above)
  double detection_weight = 1.0;  // multiplies the student's detection losses
  train::OptimizerOptions optimizer;

  static StepOptions from_json(const Json& o);
  Json to_json() const;
};

struct StepOutput {
  std::map<std::string, double> losses;  // detection and "distill." terms, as weighted in the total
  double total = 0;
  train::StepResult optimizer;
  std::map<std::string, std::string> adapters;  // "<teacher>/<pair>" -> adapter kind
  bool student_training = false;
  std::vector<bool> teachers_training;  // each teacher's mode while it ran (always false)
};

class DistillStep {
 public:
  DistillStep(std::shared_ptr<Detector> student, std::vector<StepTeacher> teachers, StepOptions options);

  // One training step. `cached[i]`, when given and non-empty, replaces running
  // teacher i (features cached from an earlier run on the same images and transform).
  // `cached_sizes[i]`, when given and non-empty, are the per-image sizes after teacher i's
  // resize those features were computed at; otherwise the teacher's eval-mode resize rule gives
  // them (required for a teacher without a model).
  StepOutput step(const std::vector<at::Tensor>& images, const std::vector<Target>& targets,
                  const std::vector<FeatureMap>* cached = nullptr,
                  const std::vector<std::vector<ImageSize>>* cached_sizes = nullptr);

  // Teacher i's feature taps for `images` (eval, no grad), e.g. to cache them.
  FeatureMap teacher_features(size_t i, const std::vector<at::Tensor>& images);
  // The same with the per-image sizes after the teacher's resize.
  std::pair<FeatureMap, std::vector<ImageSize>> teacher_run(size_t i, const std::vector<at::Tensor>& images);

  train::Optimizer& optimizer() { return *optimizer_; }
  const StepOptions& options() const { return options_; }
  const std::vector<StepTeacher>& teachers() const { return teachers_; }
  // Everything the optimizer updates: "student.<name>" and "distill.<teacher>.<name>".
  train::NamedParams parameters() const;

 private:
  std::shared_ptr<Detector> student_;
  std::vector<StepTeacher> teachers_;
  StepOptions options_;
  bool maps_ = false;  // ensemble "maps"
  std::unique_ptr<train::Optimizer> optimizer_;
};

}  // namespace mtpd::distill
