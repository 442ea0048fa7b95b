// N-API glue for data-parallel training: dist.backends(), dist.createGroup(options) ->
// Promise<NativeProcessGroup> (rendezvous off the event loop), its collectives as promises, and
// group.createGradSync(bucketBytes) -> NativeGradSync, which optimizer.setGradSync /
// distillStep.setGradSync attach (binding/dist_js.h), and dist.setSyncBatchNorm(detector, sync)
// (synchronized BatchNorm over the same job, models/sync_batch_norm.h).
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "binding/convert.h"
#include "binding/detector_wrap.h"
#include "binding/dist_js.h"
#include "binding/exports.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "dist/norm_sync.h"
#include "dist/process_group.h"

namespace mtpd::binding {

namespace {
Napi::FunctionReference* g_group_ctor = nullptr;
Napi::FunctionReference* g_sync_ctor = nullptr;

using GroupPtr = std::shared_ptr<dist::ProcessGroup>;

class GradSyncWrap : public Napi::ObjectWrap<GradSyncWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeGradSync",
                       {InstanceMethod<&GradSyncWrap::SetWeight>("setWeight"),
                        InstanceMethod<&GradSyncWrap::Weight>("weight"),
                        InstanceMethod<&GradSyncWrap::BucketSizes>("bucketSizes")});
  }
  explicit GradSyncWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GradSyncWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeGradSync is created by group.createGradSync(), not with new");
    sync_ = *info[0].As<Napi::External<std::shared_ptr<dist::GradSync>>>().Data();
  }
  std::shared_ptr<dist::GradSync> sync() const { return sync_; }

 private:
  // setWeight(w): this rank's share of the next steps' gradient (its images / all images).
  Napi::Value SetWeight(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected weight to be a number");
    const double w = info[0].As<Napi::Number>().DoubleValue();
    guarded(env, [&] {
      sync_->set_weight(w);
      return 0;
    });
    return env.Undefined();
  }
  Napi::Value Weight(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), sync_->weight()); }
  Napi::Value BucketSizes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto sizes = sync_->bucket_sizes();
    Napi::Array a = Napi::Array::New(env, sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) a.Set(static_cast<uint32_t>(i), static_cast<double>(sizes[i]));
    return a;
  }
  std::shared_ptr<dist::GradSync> sync_;
};

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeProcessGroup",
                       {InstanceMethod<&ProcessGroupWrap::Info>("info"),
                        InstanceMethod<&ProcessGroupWrap::Allreduce>("allreduce"),
                        InstanceMethod<&ProcessGroupWrap::Broadcast>("broadcast"),
                        InstanceMethod<&ProcessGroupWrap::AllgatherBytes>("allgatherBytes"),
                        InstanceMethod<&ProcessGroupWrap::Barrier>("barrier"),
                        InstanceMethod<&ProcessGroupWrap::StalledRanks>("stalledRanks"),
                        InstanceMethod<&ProcessGroupWrap::Heartbeats>("heartbeats"),
                        InstanceMethod<&ProcessGroupWrap::CreateGradSync>("createGradSync"),
                        InstanceMethod<&ProcessGroupWrap::Close>("close")});
  }
  explicit ProcessGroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeProcessGroup is created by dist.createGroup(), not with new");
    group_ = *info[0].As<Napi::External<GroupPtr>>().Data();
  }

 private:
  GroupPtr live(Napi::Env env) const {
    if (!group_) throw Napi::Error::New(env, "the process group is closed");
    return group_;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("rank", g->rank());
    o.Set("worldSize", g->size());
    o.Set("backends", g->backends());
    o.Set("host", g->options().host);
    o.Set("port", g->options().port);
    o.Set("timeoutMs", static_cast<double>(g->options().timeout_ms));
    return o;
  }

  // allreduce(tensors) -> Promise<tensors>: the sums over ranks (one collective for all).
  Napi::Value Allreduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    auto ts = tensors_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "tensors");
    return run_async<std::vector<at::Tensor>>(
        env,
        [g, ts]() mutable {
          for (auto& t : ts) t = t.clone();
          g->allreduce(ts);
          return ts;
        },
        [](Napi::Env env, std::vector<at::Tensor>& r) -> Napi::Value { return tensors_to_js(env, r); });
  }

  // broadcast(tensors, root) -> Promise<tensors>: rank root's values on every rank.
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    auto ts = tensors_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "tensors");
    if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(env, "expected root to be a rank number");
    const int root = info[1].As<Napi::Number>().Int32Value();
    return run_async<std::vector<at::Tensor>>(
        env,
        [g, ts, root]() mutable {
          for (auto& t : ts) t = t.clone();
          g->broadcast(ts, root);
          return ts;
        },
        [](Napi::Env env, std::vector<at::Tensor>& r) -> Napi::Value { return tensors_to_js(env, r); });
  }

  // allgatherBytes(Uint8Array) -> Promise<Uint8Array[]>: every rank's bytes, in rank order.
  Napi::Value AllgatherBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "expected bytes to be a Uint8Array");
    Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
    at::Tensor t = at::empty({static_cast<int64_t>(a.ElementLength())}, at::TensorOptions().dtype(at::kByte));
    if (a.ElementLength()) std::memcpy(t.data_ptr(), a.Data(), a.ElementLength());
    return run_async<std::vector<at::Tensor>>(
        env, [g, t] { return g->allgather_bytes(t); },
        [](Napi::Env env, std::vector<at::Tensor>& r) -> Napi::Value {
          Napi::Array out = Napi::Array::New(env, r.size());
          for (size_t i = 0; i < r.size(); ++i) {
            Napi::Uint8Array b = Napi::Uint8Array::New(env, r[i].numel());
            if (r[i].numel()) std::memcpy(b.Data(), r[i].data_ptr(), r[i].numel());
            out.Set(static_cast<uint32_t>(i), b);
          }
          return out;
        });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    return run_async<int>(
        env,
        [g] {
          g->barrier();
          return 0;
        },
        [](Napi::Env env, int&) -> Napi::Value { return env.Undefined(); });
  }

  // stalledRanks(windowMs) -> Promise<number[]>: peers whose heartbeat did not advance.
  Napi::Value StalledRanks(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "expected windowMs to be a number");
    const double w = info[0].As<Napi::Number>().DoubleValue();
    if (!(w > 0 && w < 3.6e6)) throw Napi::RangeError::New(env, "windowMs must be in (0, 3600000)");
    return run_async<std::vector<int>>(
        env, [g, w] { return g->stalled_ranks(static_cast<int64_t>(w)); },
        [](Napi::Env env, std::vector<int>& r) -> Napi::Value {
          Napi::Array a = Napi::Array::New(env, r.size());
          for (size_t i = 0; i < r.size(); ++i) a.Set(static_cast<uint32_t>(i), r[i]);
          return a;
        });
  }

  // heartbeats() -> Promise<number[]>: every rank's heartbeat count (the watchdog's poll).
  Napi::Value Heartbeats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    return run_async<std::vector<int64_t>>(
        env, [g] { return g->heartbeats(); },
        [](Napi::Env env, std::vector<int64_t>& r) -> Napi::Value {
          Napi::Array a = Napi::Array::New(env, r.size());
          for (size_t i = 0; i < r.size(); ++i) a.Set(static_cast<uint32_t>(i), static_cast<double>(r[i]));
          return a;
        });
  }

  // createGradSync(bucketBytes?) -> NativeGradSync
  Napi::Value CreateGradSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto g = live(env);
    double bytes = 25.0 * 1024 * 1024;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "expected bucketBytes to be a number");
      bytes = info[0].As<Napi::Number>().DoubleValue();
      if (!(bytes >= 1 && bytes <= 1e12) || std::floor(bytes) != bytes)
        throw Napi::RangeError::New(env, "bucketBytes must be a positive integer");
    }
    auto s = guarded(env, [&] { return std::make_shared<dist::GradSync>(g, static_cast<int64_t>(bytes)); });
    return g_sync_ctor->New({Napi::External<std::shared_ptr<dist::GradSync>>::New(env, &s)});
  }

  // close(): this handle lets go of the group (it ends once every gradient sync over it is gone).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    group_.reset();
    return info.Env().Undefined();
  }

  GroupPtr group_;
};

// createGroup({host, port, rank, worldSize, timeoutMs, heartbeatMs, cuda}) -> Promise<NativeProcessGroup>
Napi::Value CreateGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "expected options to be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  dist::GroupOptions g;
  auto num = [&](const char* k, double& out, bool required) {
    Napi::Value v = o.Get(k);
    if (v.IsUndefined()) {
      if (required) throw Napi::TypeError::New(env, fmt("expected options.", k, " to be a number"));
      return;
    }
    if (!v.IsNumber()) throw Napi::TypeError::New(env, fmt("expected options.", k, " to be a number"));
    out = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(out) || std::floor(out) != out || out < 0)
      throw Napi::RangeError::New(env, fmt("options.", k, " must be a non-negative integer, got ", out));
  };
  double port = g.port, rank = 0, world = 1, timeout = static_cast<double>(g.timeout_ms),
         beat = static_cast<double>(g.heartbeat_ms);
  num("port", port, true);
  num("rank", rank, true);
  num("worldSize", world, true);
  num("timeoutMs", timeout, false);
  num("heartbeatMs", beat, false);
  Napi::Value host = o.Get("host");
  if (!host.IsString()) throw Napi::TypeError::New(env, "expected options.host to be a string");
  g.host = host.As<Napi::String>().Utf8Value();
  Napi::Value cuda = o.Get("cuda");
  if (!cuda.IsUndefined()) {
    if (!cuda.IsBoolean()) throw Napi::TypeError::New(env, "expected options.cuda to be a boolean");
    g.cuda = cuda.As<Napi::Boolean>().Value();
  }
  g.port = static_cast<int>(port);
  g.rank = static_cast<int>(rank);
  g.world_size = static_cast<int>(world);
  g.timeout_ms = static_cast<int64_t>(timeout);
  g.heartbeat_ms = static_cast<int64_t>(beat);
  return run_async<GroupPtr>(
      env, [g] { return std::make_shared<dist::ProcessGroup>(g); },
      [](Napi::Env env, GroupPtr& p) -> Napi::Value {
        return g_group_ctor->New({Napi::External<GroupPtr>::New(env, &p)});
      });
}

// exitNow(code): ends the process at once, without destructors. A rank whose peer hangs cannot
// exit normally: tearing down its ProcessGroupGloo waits for the collective stuck on that peer.
Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  const int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  std::fflush(nullptr);
  std::_Exit(code);
}

// setSyncBatchNorm(detector, sync | null) -> number: the detector's trainable BatchNorm layers
// compute their batch statistics over the job of the gradient sync `sync` (weighted by its
// share, which follows every step's batch); null makes them plain BatchNorm again. Returns how
// many layers it changed (0 for a model with frozen BatchNorm only). Synchronous (it sets a
// pointer per layer); refused while a call on the model runs.
Napi::Value SetSyncBatchNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DetectorWrap* w = detector_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "detector");
  w->check_alive(env, "setSyncBatchNorm");
  auto grads = grad_sync_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "sync");
  auto release = w->claim(env, "setSyncBatchNorm");
  int64_t n = 0;
  try {
    n = guarded(env, [&] {
      std::shared_ptr<NormStatsSync> sync;
      if (grads) sync = std::make_shared<dist::GroupNormSync>(grads);
      return set_norm_sync(*w->detector(), sync);
    });
  } catch (...) {
    release();
    throw;
  }
  release();
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto b = dist::available_backends();
  Napi::Array a = Napi::Array::New(env, b.size());
  for (size_t i = 0; i < b.size(); ++i) a.Set(static_cast<uint32_t>(i), b[i]);
  return a;
}

ExportRegistrar reg_dist("dist", [](Napi::Env env, Napi::Object exports) {
  g_group_ctor = new Napi::FunctionReference(Napi::Persistent(ProcessGroupWrap::Define(env)));
  g_sync_ctor = new Napi::FunctionReference(Napi::Persistent(GradSyncWrap::Define(env)));
  env.AddCleanupHook([] {
    delete g_group_ctor;
    g_group_ctor = nullptr;
    delete g_sync_ctor;
    g_sync_ctor = nullptr;
  });
  Napi::Object d = Napi::Object::New(env);
  d.Set("backends", Napi::Function::New<Backends>(env, "backends"));
  d.Set("createGroup", Napi::Function::New<CreateGroup>(env, "createGroup"));
  d.Set("exitNow", Napi::Function::New<ExitNow>(env, "exitNow"));
  d.Set("setSyncBatchNorm", Napi::Function::New<SetSyncBatchNorm>(env, "setSyncBatchNorm"));
  exports.Set("dist", d);
});
}  // namespace

std::shared_ptr<dist::GradSync> grad_sync_from_js(const Napi::Value& value, const std::string& what) {
  if (value.IsNull() || value.IsUndefined()) return nullptr;
  if (!g_sync_ctor || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(g_sync_ctor->Value()))
    throw Napi::TypeError::New(value.Env(), fmt("expected ", what, " to be a gradient sync (group.createGradSync()) or null"));
  return Napi::ObjectWrap<GradSyncWrap>::Unwrap(value.As<Napi::Object>())->sync();
}

}  // namespace mtpd::binding
