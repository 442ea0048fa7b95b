// The N-API entry point: runtime info and settings, the module registry, and tensor ops.
// All glue between JS and libtorch lives in this folder; nothing here orchestrates.
#include <napi.h>
#include <torch/torch.h>

#include "binding/addon_data.h"
#include "binding/convert.h"
#include "binding/exports.h"
#include "binding/module_wrap.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "core/host_allocator.h"
#include "core/registry.h"
#include "core/runtime.h"

#ifndef MTPD_TORCH_VERSION_STRING
#define MTPD_TORCH_VERSION_STRING "unknown"
#endif

namespace mtpd::binding {

namespace {
std::vector<std::pair<std::string, ExportInit>>& registrars() {
  static std::vector<std::pair<std::string, ExportInit>> r;
  return r;
}
}  // namespace

ExportRegistrar::ExportRegistrar(const char* area, ExportInit init) { registrars().emplace_back(area, std::move(init)); }

void run_export_registrars(Napi::Env env, Napi::Object exports) {
  for (auto& [area, init] : registrars()) init(env, exports);
}

namespace {

Napi::Value RuntimeInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&] {
    const RuntimeInfo r = runtime_info();
    Napi::Object o = Napi::Object::New(env);
    o.Set("torchVersion", r.torch_version_built);
    o.Set("torchVersionRuntime", r.torch_version_runtime);
    o.Set("torchCmakeVersion", MTPD_TORCH_VERSION_STRING);
    o.Set("cxx11Abi", r.cxx11_abi);
    o.Set("cudaBuilt", r.cuda_built);
    o.Set("cudaAvailable", r.cuda_available);
    o.Set("cudaDeviceCount", r.cuda_device_count);
    o.Set("numThreads", r.num_threads);
    o.Set("numInteropThreads", r.num_interop_threads);
    o.Set("hardwareConcurrency", hardware_concurrency());
    o.Set("parallelInfo", r.parallel_info);
    o.Set("napiVersion", NAPI_VERSION);
    return o;
  });
}

Napi::Value SetNumThreadsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected threads to be a number");
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (std::floor(n) != n || n < 0 || n > 4096)
    throw Napi::RangeError::New(env, fmt("threads must be an integer in 0..4096 (0 = all cores), got ", n));
  return Napi::Number::New(env, guarded(env, [&] { return set_num_threads(static_cast<int>(n)); }));
}

Napi::Value SetSeedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected seed to be a number");
  const double s = info[0].As<Napi::Number>().DoubleValue();
  if (!(s >= 0 && s <= 9007199254740991.0 && std::floor(s) == s))
    throw Napi::RangeError::New(env, fmt("seed must be a non-negative integer, got ", s));
  guarded(env, [&] { set_seed(static_cast<uint64_t>(s)); });
  return env.Undefined();
}

// rngState() -> {generator: uint8 tensor}: libtorch's default generators, for checkpoints.
Napi::Value RngStateJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NamedTensors states = guarded(env, [] { return rng_states(); });
  return state_dict_to_js(env, states);
}

// setRngState(names, tensors)
Napi::Value SetRngStateJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool strict = true;
  NamedTensors states = state_dict_args(info, 0, strict);
  guarded(env, [&] {
    set_rng_states(states);
    return 0;
  });
  return env.Undefined();
}

// hostMemory() -> the caching host allocator's figures (bytes); releaseHostMemory() frees its cache.
Napi::Value HostMemoryJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const HostAllocatorStats s = host_allocator_stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cachingAllocator", s.installed);
  o.Set("liveBytes", static_cast<double>(s.live_bytes));
  o.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  o.Set("peakLiveBytes", static_cast<double>(s.peak_live_bytes));
  o.Set("boundBytes", static_cast<double>(s.bound_bytes));
  o.Set("segmentCount", static_cast<double>(s.segment_count));
  o.Set("hits", static_cast<double>(s.hits));
  o.Set("misses", static_cast<double>(s.misses));
  return o;
}

Napi::Value ReleaseHostMemoryJs(const Napi::CallbackInfo& info) {
  release_cached_host_memory();
  return info.Env().Undefined();
}

Napi::Value ListModulesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto mods = registered_modules();
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, doc] : mods) o.Set(name, doc);
  return o;
}

Napi::Value CheckDeviceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string spec = string_arg(info, 0, "device");
  return Napi::String::New(env, guarded(env, [&] { return parse_device(spec).str(); }));
}

// ops.matmul(a, b, device): a @ b on `device`, off the event loop.
Napi::Value MatmulJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor a = tensor_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "a");
  at::Tensor b = tensor_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "b");
  const std::string device = optional_string_arg(info, 2, "device", "cpu");
  return run_async<at::Tensor>(
      env,
      [a, b, device] {
        const c10::Device dev = parse_device(device);
        MTPD_CHECK_SHAPE(a.dim() >= 1 && b.dim() >= 1, "matmul: a and b need at least one dimension");
        return host(at::matmul(a.to(dev), b.to(dev)));
      },
      [](Napi::Env env, at::Tensor& t) -> Napi::Value { return tensor_to_js(env, t); });
}

// ops.toDevice(t, device): a copy of t through `device` and back (exercises both directions).
Napi::Value ToDeviceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = tensor_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "tensor");
  const std::string device = string_arg(info, 1, "device");
  return run_async<at::Tensor>(
      env, [t, device] { return host(t.to(parse_device(device)).clone()); },
      [](Napi::Env env, at::Tensor& t) -> Napi::Value { return tensor_to_js(env, t); });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  install_host_allocator();
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  data->module_ctor = Napi::Persistent(ModuleWrap::Define(env));

  exports.Set("runtimeInfo", Napi::Function::New<RuntimeInfoJs>(env, "runtimeInfo"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreadsJs>(env, "setNumThreads"));
  exports.Set("setSeed", Napi::Function::New<SetSeedJs>(env, "setSeed"));
  exports.Set("rngState", Napi::Function::New<RngStateJs>(env, "rngState"));
  exports.Set("setRngState", Napi::Function::New<SetRngStateJs>(env, "setRngState"));
  exports.Set("hostMemory", Napi::Function::New<HostMemoryJs>(env, "hostMemory"));
  exports.Set("releaseHostMemory", Napi::Function::New<ReleaseHostMemoryJs>(env, "releaseHostMemory"));
  exports.Set("listModules", Napi::Function::New<ListModulesJs>(env, "listModules"));
  exports.Set("checkDevice", Napi::Function::New<CheckDeviceJs>(env, "checkDevice"));
  exports.Set("createModule", Napi::Function::New<ModuleWrap::Create>(env, "createModule"));
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("matmul", Napi::Function::New<MatmulJs>(env, "matmul"));
  ops.Set("toDevice", Napi::Function::New<ToDeviceJs>(env, "toDevice"));
  exports.Set("ops", ops);
  exports.Set("NativeModule", data->module_ctor.Value());
  run_export_registrars(env, exports);
  return exports;
}

}  // namespace
}  // namespace mtpd::binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return mtpd::binding::Init(env, exports); }

NODE_API_MODULE(mtpd_addon, InitAddon)
