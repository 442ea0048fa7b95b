#include "binding/optimizer_wrap.h"

#include <torch/torch.h>

#include "binding/convert.h"
#include "binding/detector_wrap.h"
#include "binding/dispose.h"
#include "binding/dist_js.h"
#include "binding/exports.h"
#include "binding/worker.h"
#include "core/errors.h"

namespace mtpd::binding {

namespace {
Napi::FunctionReference* g_optimizer_ctor = nullptr;
struct PendingOpt {
  std::shared_ptr<train::Optimizer> opt;
  const void* owner;
  DetectorWrap* detector = nullptr;
  Napi::Object detector_js;
};
}  // namespace

OptimizerWrap* optimizer_from_js(const Napi::Value& value, const std::string& what) {
  if (!g_optimizer_ctor || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(g_optimizer_ctor->Value()))
    throw Napi::TypeError::New(value.Env(), fmt("expected ", what, " to be an optimizer (from createOptimizer)"));
  OptimizerWrap* w = Napi::ObjectWrap<OptimizerWrap>::Unwrap(value.As<Napi::Object>());
  w->check_alive(value.Env(), "use");
  return w;
}

void OptimizerWrap::check_alive(Napi::Env env, const char* method) const {
  if (!optimizer_) throw disposed_error(env, "optimizer", method);
  if (detector_ && detector_->disposed()) {
    Napi::Error e = Napi::Error::New(env, fmt("optimizer.", method, "(): the detector it was created for was disposed"));
    e.Set("code", Napi::String::New(env, "ERR_MTPD_DISPOSED"));
    throw e;
  }
}

Napi::Value OptimizerWrap::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!optimizer_) return env.Undefined();
  // State calls run on the detector's thread while claiming it: none may be in flight.
  if (detector_ && !detector_->disposed()) {
    auto release = detector_->claim(env, "optimizer.dispose");
    release();
  }
  optimizer_.reset();
  owner_ = nullptr;
  detector_ = nullptr;
  detector_ref_.Reset();
  release_freed_memory();
  return env.Undefined();
}

Napi::Function OptimizerWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeOptimizer",
                     {InstanceMethod<&OptimizerWrap::Info>("info"), InstanceMethod<&OptimizerWrap::SetLr>("setLr"),
                      InstanceMethod<&OptimizerWrap::Lr>("lr"), InstanceMethod<&OptimizerWrap::StateDict>("stateDict"),
                      InstanceMethod<&OptimizerWrap::LoadStateDict>("loadStateDict"),
                      InstanceMethod<&OptimizerWrap::Dispose>("dispose"),
                      InstanceMethod<&OptimizerWrap::SetGradSync>("setGradSync")});
}

OptimizerWrap::OptimizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OptimizerWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "NativeOptimizer is created by createOptimizer(), not with new");
  auto* p = info[0].As<Napi::External<PendingOpt>>().Data();
  optimizer_ = p->opt;
  owner_ = p->owner;
  detector_ = p->detector;
  detector_ref_ = Napi::Persistent(p->detector_js);
}

// createOptimizer(detector, optionsJson): built on the main thread (cheap; no tensor work) so
// that it cannot race a call in flight on the detector.
Napi::Value OptimizerWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DetectorWrap* dw = detector_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "detector");
  const std::string options = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "{}";
  auto release = dw->claim(env, "createOptimizer");
  PendingOpt p;
  try {
    p = guarded(env, [&] {
      Json o;
      try {
        o = Json::parse(options);
      } catch (const std::exception& e) {
        throw ArgumentError(fmt("optimizer options are not valid JSON: ", e.what()));
      }
      auto det = dw->detector();
      PendingOpt r;
      r.opt = std::make_shared<train::Optimizer>(train::trainable_parameters(*det),
                                                 train::OptimizerOptions::from_json(o));
      r.owner = det.get();
      return r;
    });
  } catch (...) {
    release();
    throw;
  }
  release();
  p.detector = dw;
  p.detector_js = info[0].As<Napi::Object>();
  return g_optimizer_ctor->New({Napi::External<PendingOpt>::New(env, &p)});
}

Napi::Value OptimizerWrap::Info(const Napi::CallbackInfo& info) {
  check_alive(info.Env(), "info");
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("options", optimizer_->options().to_json().dump());
  o.Set("lr", Napi::Number::New(env, optimizer_->lr()));
  o.Set("steps", Napi::Number::New(env, static_cast<double>(optimizer_->steps())));
  auto groups = optimizer_->group_summary();
  Napi::Array g = Napi::Array::New(env, groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", std::get<0>(groups[i]));
    e.Set("tensors", Napi::Number::New(env, static_cast<double>(std::get<1>(groups[i]))));
    e.Set("numel", Napi::Number::New(env, static_cast<double>(std::get<2>(groups[i]))));
    g.Set(static_cast<uint32_t>(i), e);
  }
  o.Set("groups", g);
  return o;
}

Napi::Value OptimizerWrap::SetLr(const Napi::CallbackInfo& info) {
  check_alive(info.Env(), "setLr");
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected lr to be a number");
  const double lr = info[0].As<Napi::Number>().DoubleValue();
  guarded(env, [&] {
    optimizer_->set_lr(lr);
    return 0;
  });
  return env.Undefined();
}

Napi::Value OptimizerWrap::Lr(const Napi::CallbackInfo& info) {
  check_alive(info.Env(), "lr");
  return Napi::Number::New(info.Env(), optimizer_->lr());
}

// stateDict() -> {name: tensor} (see train::Optimizer::state_dict), on the detector's thread.
Napi::Value OptimizerWrap::StateDict(const Napi::CallbackInfo& info) {
  check_alive(info.Env(), "stateDict");
  Napi::Env env = info.Env();
  auto done = detector_->claim(env, "optimizer.stateDict");
  auto opt = optimizer_;
  auto exec = detector_->executor();
  return run_async<NamedTensors>(
      env,
      [opt, exec] {
        NamedTensors out;
        exec->run([&] {
          for (auto& [k, v] : opt->state_dict()) out.emplace_back(k, host(v));
        });
        return out;
      },
      [](Napi::Env env, NamedTensors& sd) -> Napi::Value { return state_dict_to_js(env, sd); }, done);
}

// loadStateDict({name: tensor}): restores a stateDict() of the same kind of optimizer.
Napi::Value OptimizerWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  check_alive(info.Env(), "loadStateDict");
  Napi::Env env = info.Env();
  bool strict = true;
  NamedTensors sd = state_dict_args(info, 0, strict);
  auto done = detector_->claim(env, "optimizer.loadStateDict");
  auto opt = optimizer_;
  auto exec = detector_->executor();
  return run_async<int>(
      env,
      [opt, exec, sd = std::move(sd)] {
        exec->run([&] { opt->load_state_dict(sd); });
        return 0;
      },
      [](Napi::Env env, int&) -> Napi::Value { return env.Undefined(); }, done);
}

// setGradSync(sync | null) -> Promise: every later step averages its gradients over the
// processes (dist/grad_sync.h); the parameters first take rank 0's values on every rank.
Napi::Value OptimizerWrap::SetGradSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env, "setGradSync");
  auto sync = grad_sync_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "sync");
  auto done = detector_->claim(env, "optimizer.setGradSync");
  auto opt = optimizer_;
  auto exec = detector_->executor();
  return run_async<int>(
      env,
      [opt, exec, sync] {
        exec->run([&] {
          if (sync) {
            std::vector<at::Tensor> params = opt->params();
            sync->broadcast(params, 0);
          }
          opt->set_grad_hook(sync);
        });
        return 0;
      },
      [](Napi::Env env, int&) -> Napi::Value { return env.Undefined(); }, done);
}

namespace {
ExportRegistrar reg_optim("optimizers", [](Napi::Env env, Napi::Object exports) {
  g_optimizer_ctor = new Napi::FunctionReference(Napi::Persistent(OptimizerWrap::Define(env)));
  env.AddCleanupHook([] {
    delete g_optimizer_ctor;
    g_optimizer_ctor = nullptr;
  });
  exports.Set("createOptimizer", Napi::Function::New<OptimizerWrap::Create>(env, "createOptimizer"));
});
}  // namespace

}  // namespace mtpd::binding
