// The distillation step (MTPD, method.md 1.2 and 1.1): student detection losses plus the
// weighted distillation losses of one or several frozen teachers, ONE backward and ONE
// optimizer over the student and every distiller (adapters, GC blocks, generation blocks).
//
// Teachers are frozen when the step is built (requires_grad false on every parameter) and put
// in eval mode on every step, whatever the caller did to them in between (the original MTPD
// code let Swin's drop path run in train mode; we do not). Each teacher runs at its own input
// resolution: its own transform (min_size / max_size) resizes the batch, and each pair's
// adapter resizes the student map to the teacher's. FGD's boxes and image sizes are the
// student's (after its resize), so they describe the same regions on any teacher's grid.
//
// Several teachers: every teacher's losses at once ("distill.<teacher>.<pair>.<term>"), summed
// or averaged (ensemble "sum" | "mean"), each also scaled by its own weight. One teacher:
// "distill.<pair>.<term>", the single-teacher direct distillation of each MTPD stage.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "distill/distiller.h"
#include "models/detector.h"
#include "train/optimizer.h"

namespace mtpd::distill {

struct StepTeacher {
  std::string name;
  std::shared_ptr<Detector> model;  // may be null when every step passes cached features
  std::shared_ptr<DistillerImpl> distiller;
  double weight = 1.0;
};

struct StepOptions {
  std::string ensemble = "sum";  // "sum" | "mean" over teachers
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
  StepOutput step(const std::vector<at::Tensor>& images, const std::vector<Target>& targets,
                  const std::vector<FeatureMap>* cached = nullptr);

  // Teacher i's feature taps for `images` (eval, no grad), e.g. to cache them.
  FeatureMap teacher_features(size_t i, const std::vector<at::Tensor>& images);

  train::Optimizer& optimizer() { return *optimizer_; }
  const StepOptions& options() const { return options_; }
  const std::vector<StepTeacher>& teachers() const { return teachers_; }
  // Everything the optimizer updates: "student.<name>" and "distill.<teacher>.<name>".
  train::NamedParams parameters() const;

 private:
  std::shared_ptr<Detector> student_;
  std::vector<StepTeacher> teachers_;
  StepOptions options_;
  std::unique_ptr<train::Optimizer> optimizer_;
};

}  // namespace mtpd::distill
