#include "binding/module_wrap.h"

#include <torch/torch.h>

#include "binding/addon_data.h"
#include "binding/convert.h"
#include "binding/dispose.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "core/runtime.h"
#include "core/state_dict.h"

namespace mtpd::binding {

namespace {
struct PendingModuleCall {
  std::string name;
  BuiltModule built;
  std::string device;
};
}  // namespace

Napi::Function ModuleWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModule",
                     {
                         InstanceMethod<&ModuleWrap::Info>("info"),
                         InstanceMethod<&ModuleWrap::SetTraining>("setTraining"),
                         InstanceMethod<&ModuleWrap::StateDict>("stateDict"),
                         InstanceMethod<&ModuleWrap::LoadStateDict>("loadStateDict"),
                         InstanceMethod<&ModuleWrap::To>("to"),
                         InstanceMethod<&ModuleWrap::Forward>("forward"),
                         InstanceMethod<&ModuleWrap::Dispose>("dispose"),
                     });
}

ModuleWrap::ModuleWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModuleWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "NativeModule is created by createModule(), not with new");
  auto* p = info[0].As<Napi::External<PendingModuleCall>>().Data();
  name_ = p->name;
  built_ = std::move(p->built);
  device_ = p->device;
}

Napi::Value ModuleWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = string_arg(info, 0, "name");
  const std::string options = optional_string_arg(info, 1, "options (JSON)", "{}");
  const std::string device = optional_string_arg(info, 2, "device", "cpu");
  return run_async<std::shared_ptr<PendingModuleCall>>(
      env,
      [name, options, device] {
        Json o;
        try {
          o = Json::parse(options);
        } catch (const std::exception& e) {
          throw ArgumentError(fmt("options for \"", name, "\" are not valid JSON: ", e.what()));
        }
        const c10::Device dev = parse_device(device);
        auto pending = std::make_shared<PendingModuleCall>();
        pending->name = name;
        pending->built = build_module(name, o);
        pending->built.module->to(dev);
        pending->device = dev.str();
        return pending;
      },
      [](Napi::Env env, std::shared_ptr<PendingModuleCall>& p) -> Napi::Value {
        auto* data = env.GetInstanceData<AddonData>();
        return data->module_ctor.New({Napi::External<PendingModuleCall>::New(env, p.get())});
      });
}

ModuleWrap* ModuleWrap::FromValue(const Napi::Value& value, const std::string& what) {
  Napi::Env env = value.Env();
  auto* data = env.GetInstanceData<AddonData>();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->module_ctor.Value()))
    throw Napi::TypeError::New(env, fmt("expected ", what, " to be a native module handle"));
  ModuleWrap* w = Unwrap(value.As<Napi::Object>());
  if (w->disposed()) throw disposed_error(env, what, "use");
  return w;
}

void ModuleWrap::check_alive(Napi::Env env, const char* method) const {
  if (disposed()) throw disposed_error(env, name_, method);
}

Napi::Value ModuleWrap::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed()) return env.Undefined();
  if (busy_->load()) {
    Napi::Error e = Napi::Error::New(env, fmt(name_, ".dispose(): a call on this module is still running; await it first"));
    e.Set("code", Napi::String::New(env, "ERR_MTPD_BUSY"));
    throw e;
  }
  built_ = BuiltModule{};
  release_freed_memory();
  return env.Undefined();
}

void ModuleWrap::claim(Napi::Env env, const char* method) {
  check_alive(env, method);
  bool expected = false;
  if (!busy_->compare_exchange_strong(expected, true)) {
    Napi::Error e = Napi::Error::New(
        env, fmt(name_, ".", method, "(): another call on this model is still running; await it first"));
    e.Set("code", Napi::String::New(env, "ERR_MTPD_BUSY"));
    throw e;
  }
  Ref();  // keep this object alive while the call is in flight
}

std::function<void()> ModuleWrap::release() {
  return [this] {
    busy_->store(false);
    Unref();
  };
}

Napi::Value ModuleWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env, "info");
  Napi::Object o = Napi::Object::New(env);
  int64_t total = 0, trainable = 0;
  for (const auto& p : built_.module->parameters()) {
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  o.Set("name", name_);
  o.Set("device", device_);
  o.Set("training", built_.module->is_training());
  o.Set("parameters", Napi::Number::New(env, static_cast<double>(total)));
  o.Set("trainableParameters", Napi::Number::New(env, static_cast<double>(trainable)));
  o.Set("hasForward", static_cast<bool>(built_.forward));
  return o;
}

Napi::Value ModuleWrap::SetTraining(const Napi::CallbackInfo& info) {
  const bool on = bool_arg(info, 0, "training");
  check_alive(info.Env(), "setTraining");
  if (busy_->load()) {
    Napi::Error e = Napi::Error::New(info.Env(), fmt(name_, ".setTraining(): a call on this model is still running"));
    e.Set("code", Napi::String::New(info.Env(), "ERR_MTPD_BUSY"));
    throw e;
  }
  built_.module->train(on);
  return info.Env().Undefined();
}

Napi::Value ModuleWrap::StateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  claim(env, "stateDict");
  auto module = built_.module;
  return run_async<NamedTensors>(
      env,
      [module] {
        NamedTensors out;
        for (auto& [k, v] : state_dict(*module)) out.emplace_back(k, host(v));
        return out;
      },
      [](Napi::Env env, NamedTensors& sd) -> Napi::Value { return state_dict_to_js(env, sd); },
      release());
}

Napi::Value ModuleWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool strict = true;
  NamedTensors sd = state_dict_args(info, 0, strict);
  claim(env, "loadStateDict");
  auto module = built_.module;
  return run_async<LoadReport>(
      env, [module, sd = std::move(sd), strict] { return load_state_dict(*module, sd, strict); },
      [](Napi::Env env, LoadReport& r) -> Napi::Value { return load_report_to_js(env, r); },
      release());
}

Napi::Value ModuleWrap::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string device = string_arg(info, 0, "device");
  claim(env, "to");
  auto module = built_.module;
  auto done = release();
  return run_async<std::string>(
      env,
      [module, device] {
        const c10::Device dev = parse_device(device);
        module->to(dev);
        return dev.str();
      },
      [this](Napi::Env env, std::string& dev) -> Napi::Value {
        device_ = dev;
        return Napi::String::New(env, dev);
      },
      done);
}

Napi::Value ModuleWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env, "forward");
  if (!built_.forward) throw Napi::TypeError::New(env, fmt(name_, " has no plain forward()"));
  auto inputs = tensors_from_js(info.Length() ? info[0] : env.Undefined(), "inputs");
  claim(env, "forward");
  auto fwd = built_.forward;
  auto module = built_.module;
  return run_async<std::vector<at::Tensor>>(
      env,
      [fwd, module, inputs] {
        torch::NoGradGuard no_grad;
        const auto dev = module->parameters().empty() ? c10::Device(c10::kCPU) : module->parameters()[0].device();
        std::vector<at::Tensor> xs;
        for (const auto& x : inputs) xs.push_back(x.to(dev));
        std::vector<at::Tensor> out;
        for (const auto& y : fwd(xs)) out.push_back(host(y));
        return out;
      },
      [](Napi::Env env, std::vector<at::Tensor>& out) -> Napi::Value { return tensors_to_js(env, out); }, release());
}

}  // namespace mtpd::binding
