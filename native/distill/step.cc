#include "distill/step.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <optional>
#include <set>

#include "core/errors.h"
#include "distill/align.h"
#include "train/amp.h"

namespace mtpd::distill {

StepOptions StepOptions::from_json(const Json& o) {
  MTPD_CHECK_ARG(o.is_object(), "distill step options must be an object");
  check_known_options(o, "distill step", {"ensemble", "detection_weight", "optimizer"});
  StepOptions r;
  r.ensemble = opt_string(o, "ensemble", r.ensemble);
  MTPD_CHECK_ARG(r.ensemble == "sum" || r.ensemble == "mean" || r.ensemble == "maps",
                 "distill step: \"ensemble\" must be \"sum\", \"mean\" or \"maps\", got \"", r.ensemble, "\"");
  r.detection_weight = opt_number(o, "detection_weight", r.detection_weight);
  MTPD_CHECK_ARG(r.detection_weight >= 0, "distill step: \"detection_weight\" must be >= 0");
  r.optimizer = train::OptimizerOptions::from_json(o.contains("optimizer") ? o.at("optimizer") : Json::object());
  return r;
}

Json StepOptions::to_json() const {
  return {{"ensemble", ensemble}, {"detection_weight", detection_weight}, {"optimizer", optimizer.to_json()}};
}

DistillStep::DistillStep(std::shared_ptr<Detector> student, std::vector<StepTeacher> teachers, StepOptions options)
    : student_(std::move(student)), teachers_(std::move(teachers)), options_(std::move(options)) {
  MTPD_CHECK_ARG(student_ != nullptr, "distill step: a student detector is required");
  MTPD_CHECK_ARG(!teachers_.empty(), "distill step: at least one teacher is required");
  maps_ = options_.ensemble == "maps";
  std::set<std::string> names;
  const auto student_taps = student_->feature_names();
  MTPD_CHECK_ARG(teachers_[0].distiller != nullptr, "distill step: teachers[0] (\"", teachers_[0].name,
                 "\"): needs a distiller");
  double weights = 0;
  for (size_t i = 0; i < teachers_.size(); ++i) {
    auto& t = teachers_[i];
    const std::string what = fmt("distill step: teachers[", i, "] (\"", t.name, "\")");
    MTPD_CHECK_ARG(!t.name.empty() && names.insert(t.name).second, what, ": teacher names must be unique and non-empty");
    MTPD_CHECK_ARG(maps_ || t.distiller != nullptr, what, ": needs a distiller");
    MTPD_CHECK_ARG(t.model.get() != student_.get(), what, ": the student cannot be its own teacher");
    MTPD_CHECK_ARG(t.weight >= 0, what, ": weight must be >= 0");
    weights += t.weight;
    if (t.model) {
      t.strides = t.model->feature_stride_map();
    } else {
      MTPD_CHECK_ARG(!t.strides.empty(), what, ": has no model, so it needs the strides of its taps (e.g. {p3: 8})");
      for (const auto& [tap, stride] : t.strides)
        MTPD_CHECK_ARG(stride > 0, what, ": stride of tap \"", tap, "\" must be positive, got ", stride);
    }
    // Under "maps" the first teacher's distiller meets every teacher's (averaged) maps.
    const auto& distiller = maps_ ? teachers_[0].distiller : t.distiller;
    for (const auto& pair : distiller->pairs()) {
      MTPD_CHECK_ARG(std::find(student_taps.begin(), student_taps.end(), pair.student) != student_taps.end(), what,
                     ": pair \"", pair.name, "\" uses student tap \"", pair.student, "\", which the student lacks");
      MTPD_CHECK_ARG(pair.adapter->student_channels() == student_->feature_channels(), what, ": pair \"", pair.name,
                     "\" expects ", pair.adapter->student_channels(), " student channels, the student has ",
                     student_->feature_channels());
      MTPD_CHECK_ARG(t.strides.count(pair.teacher) > 0, what, ": pair \"", pair.name, "\" uses teacher tap \"",
                     pair.teacher, "\", which the teacher lacks");
      if (t.model) {
        MTPD_CHECK_ARG(pair.adapter->teacher_channels() == t.model->feature_channels(), what, ": pair \"", pair.name,
                       "\" expects ", pair.adapter->teacher_channels(), " teacher channels, the teacher has ",
                       t.model->feature_channels());
      }
    }
    if (t.model) {
      // Frozen: no parameter of a teacher ever asks for a gradient.
      for (auto& p : t.model->parameters()) p.set_requires_grad(false);
      t.model->eval();
    }
    // Distiller modules train (MGD/FGD have no dropout or BN, but keep them in train mode).
    if (t.distiller && (!maps_ || i == 0)) t.distiller->train(true);
  }
  MTPD_CHECK_ARG(!maps_ || weights > 0, "distill step: ensemble \"maps\" needs a positive teacher weight");
  optimizer_ = std::make_unique<train::Optimizer>(parameters(), options_.optimizer);
}

train::NamedParams DistillStep::parameters() const {
  train::NamedParams params = train::trainable_parameters(*student_, "student.");
  for (size_t i = 0; i < teachers_.size(); ++i) {
    const auto& t = teachers_[i];
    if (!t.distiller || (maps_ && i > 0)) continue;  // "maps": the first teacher's distiller alone
    auto more = train::trainable_parameters(*t.distiller, "distill." + t.name + ".");
    params.insert(params.end(), more.begin(), more.end());
  }
  return params;
}


std::pair<FeatureMap, std::vector<ImageSize>> DistillStep::teacher_run(size_t i, const std::vector<at::Tensor>& images) {
  MTPD_CHECK_ARG(i < teachers_.size(), "distill step: no teacher ", i);
  auto& t = teachers_[i];
  MTPD_CHECK_ARG(t.model != nullptr, "distill step: teacher \"", t.name, "\" has no model (cached features only)");
  t.model->eval();  // pinned, every call
  at::NoGradGuard no_grad;
  RunOptions what;
  what.features = true;
  DetectorOutput out;
  {
    // Mixed precision: the frozen teacher runs under autocast like the student; its maps come
    // back as float32 for the losses.
    train::AutocastScope autocast(t.model->device(), options_.optimizer.amp);
    out = t.model->run(images, nullptr, what);
  }
  FeatureMap maps;
  for (auto& [k, v] : out.features) maps[k] = options_.optimizer.amp ? v.to(at::kFloat) : v;
  return {maps, out.image_sizes};
}

FeatureMap DistillStep::teacher_features(size_t i, const std::vector<at::Tensor>& images) {
  return teacher_run(i, images).first;
}

namespace {

// "maps": every teacher's map of each tap the distiller reads, aligned onto the first teacher's
// grid and averaged with the normalized weights; 0 on the first teacher's padding.
FeatureMap ensemble_maps(const DistillerImpl& distiller, const std::vector<FeatureMap>& feats,
                         const std::vector<MapLayout>& layouts, const std::vector<StepTeacher>& teachers) {
  at::NoGradGuard no_grad;
  double total = 0;
  for (const auto& t : teachers) total += t.weight;
  FeatureMap out;
  for (const auto& pair : distiller.pairs()) {
    const std::string& tap = pair.teacher;
    if (out.count(tap)) continue;
    auto find = [&](size_t k) -> const at::Tensor& {
      auto it = feats[k].find(tap);
      MTPD_CHECK_ARG(it != feats[k].end(), "distill step: teacher \"", teachers[k].name, "\" has no map \"", tap,
                     "\" for the ensemble of maps");
      return it->second;
    };
    const at::Tensor& first = find(0);
    const Grid g0 = layouts[0].grid(tap, first, fmt("teacher \"", teachers[0].name, "\""));
    at::Tensor acc = first * valid_mask(g0, first.options()) * (teachers[0].weight / total);  // (N, C, H0, W0)
    for (size_t k = 1; k < teachers.size(); ++k) {
      const at::Tensor& m = find(k);
      MTPD_CHECK_SHAPE(m.dim() == 4 && m.size(1) == first.size(1) && m.size(0) == first.size(0),
                       "distill step: teacher \"", teachers[k].name, "\" map \"", tap, "\" is ", m.sizes(),
                       "; the ensemble of maps needs the first teacher's batch and channels ", first.sizes());
      const Grid gk = layouts[k].grid(tap, m, fmt("teacher \"", teachers[k].name, "\""));
      acc = acc + align_map(m.to(first.scalar_type()), gk, g0).map * (teachers[k].weight / total);
    }
    out[tap] = acc;
  }
  return out;
}

}  // namespace

StepOutput DistillStep::step(const std::vector<at::Tensor>& images, const std::vector<Target>& targets,
                             const std::vector<FeatureMap>* cached,
                             const std::vector<std::vector<ImageSize>>* cached_sizes) {
  MTPD_CHECK_ARG(!images.empty(), "distill step: images is empty");
  MTPD_CHECK_ARG(targets.size() == images.size(), "distill step: ", images.size(), " images but ", targets.size(),
                 " targets");
  MTPD_CHECK_ARG(!cached || cached->size() == teachers_.size(), "distill step: teacherFeatures has ",
                 cached ? cached->size() : 0, " entries for ", teachers_.size(), " teachers");
  MTPD_CHECK_ARG(!cached_sizes || cached_sizes->size() == teachers_.size(), "distill step: teacherImageSizes has ",
                 cached_sizes ? cached_sizes->size() : 0, " entries for ", teachers_.size(), " teachers");
  std::vector<ImageSize> original;
  for (const auto& im : images) original.push_back({im.size(-2), im.size(-1)});
  StepOutput r;
  // Teachers first, in eval mode and without autograd; each with its per-image resized sizes.
  std::vector<FeatureMap> tfeats(teachers_.size());
  std::vector<MapLayout> tlayouts(teachers_.size());
  for (size_t i = 0; i < teachers_.size(); ++i) {
    auto& t = teachers_[i];
    tlayouts[i].strides = t.strides;
    if (cached && !(*cached)[i].empty()) {
      const c10::Device dev = student_->device();
      for (const auto& [k, v] : (*cached)[i]) tfeats[i][k] = v.to(dev);
      if (cached_sizes && !(*cached_sizes)[i].empty()) {
        tlayouts[i].image_sizes = (*cached_sizes)[i];
        MTPD_CHECK_SHAPE(tlayouts[i].image_sizes.size() == images.size(), "distill step: teacherImageSizes[", i,
                         "] has ", tlayouts[i].image_sizes.size(), " sizes for ", images.size(), " images");
      } else {
        MTPD_CHECK_ARG(t.model != nullptr, "distill step: teacher \"", t.name,
                       "\" has no model, so its cached features need the image sizes they were computed at "
                       "(teacherImageSizes)");
        tlayouts[i].image_sizes = t.model->eval_image_sizes(original);  // the teacher's own resize rule
      }
      r.teachers_training.push_back(false);
      continue;
    }
    MTPD_CHECK_ARG(t.model != nullptr, "distill step: teacher \"", t.name, "\" has no model and no cached features");
    auto run = teacher_run(i, images);
    tfeats[i] = std::move(run.first);
    tlayouts[i].image_sizes = std::move(run.second);
    r.teachers_training.push_back(t.model->is_training());
  }
  // The student: detection losses and feature taps in one graph.
  at::AutoGradMode grad_mode(true);
  RunOptions what;
  what.losses = true;
  what.features = true;
  r.student_training = student_->is_training();
  // Mixed precision (optimizer.amp): autocast around the student's forward pass only; the
  // distillation losses see float32 maps and, on CUDA, the optimizer scales the loss and unscales
  // the gradients. Restored on every exit path.
  std::optional<train::AutocastScope> autocast;
  autocast.emplace(student_->device(), options_.optimizer.amp);
  DetectorOutput out = student_->run(images, &targets, what);
  autocast.reset();
  if (options_.optimizer.amp)
    for (auto& [k, v] : out.features) v = v.to(at::kFloat);  // differentiable cast: losses in float32
  LossContext ctx;
  for (const auto& tg : out.targets) ctx.boxes.push_back(tg.boxes);
  for (const auto& s : out.image_sizes) ctx.image_sizes.push_back({s[0], s[1]});
  const FeatureMap sfeats(out.features.begin(), out.features.end());
  MapLayout slayout;
  slayout.image_sizes = ctx.image_sizes;
  slayout.strides = student_->feature_stride_map();

  std::vector<std::pair<std::string, at::Tensor>> terms;
  for (auto& [k, v] : out.losses) terms.emplace_back(k, v.to(at::kFloat) * options_.detection_weight);
  if (maps_) {
    auto& t0 = teachers_[0];
    const FeatureMap avg = ensemble_maps(*t0.distiller, tfeats, tlayouts, teachers_);
    DistillOutput d = t0.distiller->forward(sfeats, avg, ctx, "distill.", &slayout, &tlayouts[0]);
    for (auto& [k, v] : d.terms) terms.emplace_back(k, v.to(at::kFloat));
    for (auto& [k, v] : d.adapters) r.adapters[t0.name + "/" + k] = v;
  } else {
    const double ens = options_.ensemble == "mean" ? 1.0 / static_cast<double>(teachers_.size()) : 1.0;
    const bool several = teachers_.size() > 1;
    for (size_t i = 0; i < teachers_.size(); ++i) {
      auto& t = teachers_[i];
      const std::string prefix = several ? "distill." + t.name + "." : "distill.";
      DistillOutput d = t.distiller->forward(sfeats, tfeats[i], ctx, prefix, &slayout, &tlayouts[i]);
      for (auto& [k, v] : d.terms) terms.emplace_back(k, v.to(at::kFloat) * (t.weight * ens));
      for (auto& [k, v] : d.adapters) r.adapters[t.name + "/" + k] = v;
    }
  }
  at::Tensor total;
  for (auto& [k, v] : terms) total = total.defined() ? total + v : v;
  r.optimizer = optimizer_->step(total);  // zero_grad, ONE backward, clip, step
  for (auto& [k, v] : terms) r.losses[k] = v.detach().to(at::kCPU, at::kDouble).item<double>();
  r.total = total.detach().to(at::kCPU, at::kDouble).item<double>();
  return r;
}

}  // namespace mtpd::distill
