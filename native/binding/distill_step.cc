// N-API glue for the distillation step: distill.createStep(student, teachers, optionsJson)
// returns a NativeDistillStep holding the student, the teachers, their distillers and ONE
// optimizer over the student and the distillers. Each call claims every model it touches.
// teachers[i]: {name, model | null, distiller | null (only after the first, under "maps"),
// weight?, strides? ({tap: stride}, for a teacher without a model)}.
#include <napi.h>
#include <torch/torch.h>

#include "binding/convert.h"
#include "binding/detector_wrap.h"
#include "binding/dispose.h"
#include "binding/dist_js.h"
#include "binding/exports.h"
#include "binding/layout_js.h"
#include "binding/module_wrap.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "distill/step.h"

namespace mtpd::binding {

namespace {

Napi::FunctionReference* g_step_ctor = nullptr;

struct PendingStep {
  std::shared_ptr<distill::DistillStep> step;
  DetectorWrap* student = nullptr;
  std::vector<DetectorWrap*> teachers;  // null where cached features only
  std::vector<ModuleWrap*> distillers;
  std::vector<Napi::Object> keep;  // JS handles kept alive with the step
};

class DistillStepWrap : public Napi::ObjectWrap<DistillStepWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeDistillStep",
                       {InstanceMethod<&DistillStepWrap::Step>("step"),
                        InstanceMethod<&DistillStepWrap::TeacherFeatures>("teacherFeatures"),
                        InstanceMethod<&DistillStepWrap::Info>("info"), InstanceMethod<&DistillStepWrap::SetLr>("setLr"),
                        InstanceMethod<&DistillStepWrap::OptimizerState>("optimizerState"),
                        InstanceMethod<&DistillStepWrap::LoadOptimizerState>("loadOptimizerState"),
                        InstanceMethod<&DistillStepWrap::Dispose>("dispose"),
                        InstanceMethod<&DistillStepWrap::SetGradSync>("setGradSync")});
  }

  explicit DistillStepWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DistillStepWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeDistillStep is created by distill.createStep(), not with new");
    auto* p = info[0].As<Napi::External<PendingStep>>().Data();
    step_ = p->step;
    student_ = p->student;
    teachers_ = p->teachers;
    distillers_ = p->distillers;
    for (auto& o : p->keep) keep_.push_back(Napi::Persistent(o));
  }

  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    PendingStep p;
    p.student = detector_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "student");
    p.keep.push_back(info[0].As<Napi::Object>());
    if (info.Length() < 2 || !info[1].IsArray())
      throw Napi::TypeError::New(env, "expected teachers to be an array of {name, model, distiller, weight}");
    Napi::Array ta = info[1].As<Napi::Array>();
    std::vector<distill::StepTeacher> teachers;
    for (uint32_t i = 0; i < ta.Length(); ++i) {
      const std::string w = fmt("teachers[", i, "]");
      Napi::Value e = ta.Get(i);
      if (!e.IsObject()) throw Napi::TypeError::New(env, fmt("expected ", w, " to be {name, model, distiller, weight}"));
      Napi::Object o = e.As<Napi::Object>();
      distill::StepTeacher t;
      if (!o.Get("name").IsString()) throw Napi::TypeError::New(env, fmt("expected ", w, ".name to be a string"));
      t.name = o.Get("name").As<Napi::String>().Utf8Value();
      Napi::Value m = o.Get("model");
      DetectorWrap* tw = nullptr;
      if (!m.IsNull() && !m.IsUndefined()) {
        tw = detector_from_js(m, w + ".model");
        if (tw == p.student) throw Napi::TypeError::New(env, fmt(w, ".model is the student itself"));
        t.model = tw->detector();
        p.keep.push_back(m.As<Napi::Object>());
      }
      // Optional only for the teachers after the first under ensemble "maps" (the step checks).
      ModuleWrap* dw = nullptr;
      Napi::Value dv = o.Get("distiller");
      if (!dv.IsNull() && !dv.IsUndefined()) {
        dw = ModuleWrap::FromValue(dv, w + ".distiller");
        t.distiller = distill::as_distiller(dw->built());
        if (!t.distiller) throw Napi::TypeError::New(env, fmt("expected ", w, ".distiller to be a distill.Distiller"));
        p.keep.push_back(dv.As<Napi::Object>());
      }
      Napi::Value sv = o.Get("strides");
      if (!sv.IsNull() && !sv.IsUndefined()) t.strides = strides_from_js(sv, w + ".strides");
      Napi::Value wt = o.Get("weight");
      if (!wt.IsUndefined()) {
        if (!wt.IsNumber()) throw Napi::TypeError::New(env, fmt("expected ", w, ".weight to be a number"));
        t.weight = wt.As<Napi::Number>().DoubleValue();
      }
      p.teachers.push_back(tw);
      p.distillers.push_back(dw);
      teachers.push_back(std::move(t));
    }
    const std::string options = optional_string_arg(info, 2, "options (JSON)", "{}");
    // Built on the main thread (no tensor work beyond flags) while every model is claimed.
    std::vector<std::function<void()>> releases;
    auto release_all = [&] {
      for (auto& r : releases) r();
      releases.clear();
    };
    try {
      releases.push_back(p.student->claim(env, "createStep"));
      for (auto* t : p.teachers)
        if (t) releases.push_back(t->claim(env, "createStep"));
      for (auto* d : p.distillers)
        if (d) releases.push_back(d->claim_for(env, "createStep"));
      p.step = guarded(env, [&] {
        Json o;
        try {
          o = Json::parse(options);
        } catch (const std::exception& e) {
          throw ArgumentError(fmt("distill step options are not valid JSON: ", e.what()));
        }
        return std::make_shared<distill::DistillStep>(p.student->detector(), teachers,
                                                      distill::StepOptions::from_json(o));
      });
    } catch (...) {
      release_all();
      throw;
    }
    release_all();
    return g_step_ctor->New({Napi::External<PendingStep>::New(env, &p)});
  }

 private:
  void check_alive(Napi::Env env, const char* method) const {
    if (!step_) throw disposed_error(env, "distillStep", method);
  }

  // dispose(): drops the step's optimizer (its state and its references to the student's and
  // the distillers' parameters) and its holds on the models' handles; the models themselves
  // are disposed by their owners. Idempotent; ERR_MTPD_BUSY while a call runs.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!step_) return env.Undefined();
    std::vector<std::function<void()>> rs;
    try {
      if (!student_->disposed()) rs.push_back(student_->claim(env, "distillStep.dispose"));
      for (auto* t : teachers_)
        if (t && !t->disposed()) rs.push_back(t->claim(env, "distillStep.dispose"));
      for (auto* d : distillers_)
        if (d && !d->disposed()) rs.push_back(d->claim_for(env, "distillStep.dispose"));
    } catch (...) {
      for (auto& r : rs) r();
      throw;
    }
    for (auto& r : rs) r();
    step_.reset();
    student_ = nullptr;
    teachers_.clear();
    distillers_.clear();
    keep_.clear();
    release_freed_memory();
    return env.Undefined();
  }

  // Claims every model of the step; releases what it got if one is busy.
  std::function<void()> claim_all(Napi::Env env, const char* method) {
    check_alive(env, method);
    std::vector<std::function<void()>> rs;
    try {
      rs.push_back(student_->claim(env, method));
      for (auto* t : teachers_)
        if (t) rs.push_back(t->claim(env, method));
      for (auto* d : distillers_)
        if (d) rs.push_back(d->claim_for(env, method));
    } catch (...) {
      for (auto& r : rs) r();
      throw;
    }
    Ref();
    return [this, rs] {
      for (auto& r : rs) r();
      Unref();
    };
  }

  struct StepRequest {
    std::vector<at::Tensor> images;
    std::vector<Target> targets;
    bool has_cached = false;
    std::vector<distill::FeatureMap> cached;
    bool has_sizes = false;
    std::vector<std::vector<distill::ImageSize>> cached_sizes;
  };

  // step(images, targets, teacherFeatures?: (features | null)[], teacherImageSizes?: ([h, w][] | null)[])
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto req = std::make_shared<StepRequest>();
    req->images = tensors_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "images");
    req->targets = targets_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "targets");
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsArray()) throw Napi::TypeError::New(env, "expected teacherFeatures to be an array");
      Napi::Array a = info[2].As<Napi::Array>();
      req->has_cached = true;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value v = a.Get(i);
        req->cached.push_back(v.IsNull() || v.IsUndefined() ? distill::FeatureMap{}
                                                            : tensor_map_from_js(v, fmt("teacherFeatures[", i, "]")));
      }
    }
    if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
      if (!info[3].IsArray()) throw Napi::TypeError::New(env, "expected teacherImageSizes to be an array");
      Napi::Array a = info[3].As<Napi::Array>();
      req->has_sizes = true;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value v = a.Get(i);
        req->cached_sizes.push_back(v.IsNull() || v.IsUndefined()
                                        ? std::vector<distill::ImageSize>{}
                                        : image_sizes_from_js(v, fmt("teacherImageSizes[", i, "]")));
      }
    }
    auto done = claim_all(env, "step");
    auto step = step_;
    // On the student's compute thread, as its plain trainStep (SerialExecutor: one malloc arena
    // for the student's working set, not one per libuv pool thread the steps land on).
    auto exec = student_->executor();
    return run_async<distill::StepOutput>(
        env,
        [step, req, exec] {
          distill::StepOutput out;
          exec->run([&] {
            for (auto& im : req->images) im = image_to_chw_float(im);
            out = step->step(req->images, req->targets, req->has_cached ? &req->cached : nullptr,
                             req->has_sizes ? &req->cached_sizes : nullptr);
          });
          return out;
        },
        [step](Napi::Env env, distill::StepOutput& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          Napi::Object losses = Napi::Object::New(env);
          for (const auto& [k, v] : r.losses) losses.Set(k, v);
          o.Set("losses", losses);
          o.Set("loss", r.total);
          o.Set("gradNorm", r.optimizer.grad_norm);
          o.Set("skipped", r.optimizer.skipped);
          o.Set("scale", r.optimizer.scale);
          o.Set("lr", step->optimizer().lr());
          Napi::Object adapters = Napi::Object::New(env);
          for (const auto& [k, v] : r.adapters) adapters.Set(k, v);
          o.Set("adapters", adapters);
          o.Set("studentTraining", r.student_training);
          Napi::Array tt = Napi::Array::New(env, r.teachers_training.size());
          for (size_t i = 0; i < r.teachers_training.size(); ++i) tt.Set(static_cast<uint32_t>(i), static_cast<bool>(r.teachers_training[i]));
          o.Set("teachersTraining", tt);
          return o;
        },
        done);
  }

  // teacherFeatures(i, images) -> {tap: tensor}
  Napi::Value TeacherFeatures(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_alive(env, "teacherFeatures");
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected teacher to be an index");
    const double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || std::floor(d) != d || d >= static_cast<double>(teachers_.size()))
      throw Napi::RangeError::New(env, fmt("teacher index must be in 0..", teachers_.size() - 1, ", got ", d));
    const size_t i = static_cast<size_t>(d);
    auto images = tensors_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "images");
    auto done = claim_all(env, "teacherFeatures");
    auto step = step_;
    auto exec = student_->executor();  // the step's compute thread (see step())
    return run_async<distill::FeatureMap>(
        env,
        [step, i, images, exec]() mutable {
          distill::FeatureMap out;
          exec->run([&] {
            for (auto& im : images) im = image_to_chw_float(im);
            for (auto& [k, v] : step->teacher_features(i, images)) out[k] = host(v.to(at::kFloat));
          });
          return out;
        },
        [](Napi::Env env, distill::FeatureMap& m) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          for (const auto& [k, v] : m) o.Set(k, tensor_to_js(env, v));
          return o;
        },
        done);
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_alive(env, "info");
    Napi::Object o = Napi::Object::New(env);
    o.Set("options", step_->options().to_json().dump());
    o.Set("lr", step_->optimizer().lr());
    o.Set("steps", Napi::Number::New(env, static_cast<double>(step_->optimizer().steps())));
    const auto params = step_->parameters();
    Napi::Array names = Napi::Array::New(env, params.size());
    for (size_t i = 0; i < params.size(); ++i) names.Set(static_cast<uint32_t>(i), params[i].first);
    o.Set("parameters", names);
    return o;
  }

  Napi::Value SetLr(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_alive(env, "setLr");
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected lr to be a number");
    const double lr = info[0].As<Napi::Number>().DoubleValue();
    guarded(env, [&] {
      step_->optimizer().set_lr(lr);
      return 0;
    });
    return env.Undefined();
  }

  // optimizerState() -> {name: tensor}: the state of the step's one optimizer (train/optimizer.h).
  Napi::Value OptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto done = claim_all(env, "optimizerState");
    auto step = step_;
    return run_async<NamedTensors>(
        env,
        [step] {
          NamedTensors out;
          for (auto& [k, v] : step->optimizer().state_dict()) out.emplace_back(k, host(v));
          return out;
        },
        [](Napi::Env env, NamedTensors& sd) -> Napi::Value { return state_dict_to_js(env, sd); }, done);
  }

  // loadOptimizerState({name: tensor})
  Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool strict = true;
    NamedTensors sd = state_dict_args(info, 0, strict);
    auto done = claim_all(env, "loadOptimizerState");
    auto step = step_;
    return run_async<int>(
        env,
        [step, sd = std::move(sd)] {
          step->optimizer().load_state_dict(sd);
          return 0;
        },
        [](Napi::Env env, int&) -> Napi::Value { return env.Undefined(); }, done);
  }

  // setGradSync(sync | null) -> Promise: later steps average the student's and the distillers'
  // gradients over the processes; they first take rank 0's values on every rank.
  Napi::Value SetGradSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto sync = grad_sync_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "sync");
    auto done = claim_all(env, "setGradSync");
    auto step = step_;
    return run_async<int>(
        env,
        [step, sync] {
          if (sync) {
            std::vector<at::Tensor> params = step->optimizer().params();
            sync->broadcast(params, 0);
          }
          step->optimizer().set_grad_hook(sync);
          return 0;
        },
        [](Napi::Env env, int&) -> Napi::Value { return env.Undefined(); }, done);
  }

  std::shared_ptr<distill::DistillStep> step_;
  DetectorWrap* student_ = nullptr;
  std::vector<DetectorWrap*> teachers_;
  std::vector<ModuleWrap*> distillers_;
  std::vector<Napi::ObjectReference> keep_;
};

ExportRegistrar reg_distill_step("distill-step", [](Napi::Env env, Napi::Object exports) {
  g_step_ctor = new Napi::FunctionReference(Napi::Persistent(DistillStepWrap::Define(env)));
  env.AddCleanupHook([] {
    delete g_step_ctor;
    g_step_ctor = nullptr;
  });
  Napi::Object d = exports.Has("distill") ? exports.Get("distill").As<Napi::Object>() : Napi::Object::New(env);
  d.Set("createStep", Napi::Function::New<DistillStepWrap::Create>(env, "createStep"));
  exports.Set("distill", d);
});

}  // namespace
}  // namespace mtpd::binding
