// order.fitLinearMap(trainX, trainY, valX, valY, options, masks?): the adaptation cost at one
// level; masks {train: Tensor[], val: Tensor[]} of (N, 1, H, W) restrict it to valid positions.
#include <unistd.h>

#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim (glibc only)
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>

#include "binding/convert.h"
#include "binding/detector_wrap.h"
#include "binding/exports.h"
#include "binding/layout_js.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "distill/align.h"
#include "order/linear_fit.h"

namespace mtpd::binding {
namespace {

LinearFitOptions parse_fit_options(const Napi::Value& v) {
  LinearFitOptions o;
  if (v.IsUndefined() || v.IsNull()) return o;
  Napi::Env env = v.Env();
  if (!v.IsObject()) throw Napi::TypeError::New(env, "expected options to be an object");
  Napi::Object obj = v.As<Napi::Object>();
  auto str = [&](const char* k, std::string& out) {
    Napi::Value x = obj.Get(k);
    if (x.IsUndefined()) return;
    if (!x.IsString()) throw Napi::TypeError::New(env, fmt("expected options.", k, " to be a string"));
    out = x.As<Napi::String>().Utf8Value();
  };
  auto num = [&](const char* k, double& out) {
    Napi::Value x = obj.Get(k);
    if (x.IsUndefined()) return;
    if (!x.IsNumber()) throw Napi::TypeError::New(env, fmt("expected options.", k, " to be a number"));
    out = x.As<Napi::Number>().DoubleValue();
  };
  str("fitter", o.fitter);
  str("optimizer", o.optimizer);
  num("ridge", o.ridge);
  num("lr", o.lr);
  num("momentum", o.momentum);
  double steps = static_cast<double>(o.steps), seed = 0;
  num("steps", steps);
  num("seed", seed);
  if (steps < 1 || steps > 1e9 || std::floor(steps) != steps)
    throw Napi::RangeError::New(env, "options.steps must be a positive integer");
  // (A cast of Infinity or 1e30 to uint64 is undefined behaviour; -1 and 1.5 were silently 0 and 1.)
  if (!(seed >= 0 && seed <= 9007199254740991.0 && std::floor(seed) == seed))
    throw Napi::RangeError::New(env, fmt("options.seed must be a non-negative integer, got ", seed));
  o.steps = static_cast<int64_t>(steps);
  o.seed = static_cast<uint64_t>(seed);
  if (std::isnan(o.ridge) || std::isinf(o.ridge))
    throw Napi::RangeError::New(env, "options.ridge must be a finite number (negative: chosen automatically)");
  if (!std::isfinite(o.lr)) throw Napi::RangeError::New(env, "options.lr must be a finite number");
  if (!(o.momentum >= 0) || !std::isfinite(o.momentum))
    throw Napi::RangeError::New(env, "options.momentum must be a finite number >= 0");
  return o;
}

Napi::Value FitLinearMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
  auto tx = tensors_from_js(arg(0), "trainX");
  auto ty = tensors_from_js(arg(1), "trainY");
  auto vx = tensors_from_js(arg(2), "valX");
  auto vy = tensors_from_js(arg(3), "valY");
  LinearFitOptions o = parse_fit_options(arg(4));
  bool masked = false;
  std::vector<at::Tensor> tm, vm;
  Napi::Value mv = arg(5);
  if (!mv.IsUndefined() && !mv.IsNull()) {
    if (!mv.IsObject()) throw Napi::TypeError::New(env, "expected masks to be {train, val}");
    tm = tensors_from_js(mv.As<Napi::Object>().Get("train"), "masks.train");
    vm = tensors_from_js(mv.As<Napi::Object>().Get("val"), "masks.val");
    masked = true;
  }
  return run_async<LinearFitResult>(
      env,
      [tx, ty, vx, vy, o, masked, tm, vm] {
        return masked ? fit_linear_map(tx, ty, vx, vy, o, &tm, &vm) : fit_linear_map(tx, ty, vx, vy, o);
      },
      [](Napi::Env env, LinearFitResult& r) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("valMse", r.val_mse);
        out.Set("trainMse", r.train_mse);
        out.Set("trainPixels", Napi::Number::New(env, static_cast<double>(r.train_pixels)));
        out.Set("valPixels", Napi::Number::New(env, static_cast<double>(r.val_pixels)));
        out.Set("ridge", r.ridge);
        out.Set("weight", tensor_to_js(env, host(r.weight)));
        out.Set("bias", tensor_to_js(env, host(r.bias)));
        return out;
      });
}

at::Tensor optional_tensor(const Napi::Value& v, const std::string& what) {
  return v.IsUndefined() || v.IsNull() ? at::Tensor() : tensor_from_js(v, what);
}

// The streamed closed-form fit's calls (one batch of one level each) all run on one thread: libuv
// hands successive calls to different pool threads, each with its own glibc arena, and every
// arena would keep the high-water mark of a batch's float64 temporaries (the cost matrix's peak
// grew with the number of batches until all four pool threads had held the largest level; see
// SerialExecutor). Never destroyed: calls still queued at exit find it.
SerialExecutor& fit_executor() {
  static auto* e = new SerialExecutor();
  return *e;
}

// Resident memory of the process in bytes (/proc/self/statm), 0 where it cannot be read.
size_t resident_bytes() {
  size_t pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%zu %zu", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Runs one fit call on the fit thread, then bounds what glibc keeps of its temporaries. The
// addon's malloc thresholds (core/host_allocator) never trim a heap below 1 GiB of free memory,
// so every arena that served a batch (the fit thread's, the intra-op workers') kept its
// fragments: the cost matrix's peak grew with the number of batches (cost-memory bench: 560 /
// 593 / 833-1320 MB at 4 / 16 / 64 images of 400x667). After a call, when resident memory has
// grown more than a bound (MTPD_FIT_TRIM_MIB, default 128; 0 trims after every call) above what
// it was after the last trim, the free memory goes back to the OS: the peak is then bounded by
// one batch's working set plus the bound, whatever the number of images, and trims stay rare
// (trimming after every call made the fits 2.6x slower: every call re-faulted its pages).
void run_fit(const std::function<void()>& fn) {
  fit_executor().run([&] {
    fn();
#if defined(__GLIBC__)
    static const size_t bound = [] {
      const char* v = std::getenv("MTPD_FIT_TRIM_MIB");
      const double mib = v && *v ? std::atof(v) : 128.0;
      return static_cast<size_t>(std::max(mib, 0.0) * 1024 * 1024);
    }();
    static size_t base = 0;  // resident bytes after the last trim (only the fit thread touches it)
    const size_t rss = resident_bytes();
    if (base == 0 || rss < base) base = rss;
    if (rss > base + bound || bound == 0) {
      malloc_trim(0);
      base = resident_bytes();
    }
#endif
  });
}

// An alignment of x onto y's grid, done in the call (the cost matrix streams A's maps on their own
// grid: no aligned copy and mask cross the boundary, and each batch's temporaries live and die in
// one call): {sourceSizes, sourceStride, targetSizes, targetStride} as alignMap takes them.
struct Alignment {
  bool given = false;
  distill::Grid from, to;
};

Alignment alignment_from_js(const Napi::Value& v, const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask) {
  Alignment a;
  if (v.IsUndefined() || v.IsNull()) return a;
  Napi::Env env = v.Env();
  if (!v.IsObject()) throw Napi::TypeError::New(env, "expected alignment to be {sourceSizes, sourceStride, targetSizes, targetStride}");
  if (mask.defined()) throw Napi::TypeError::New(env, "give a mask or an alignment, not both (the alignment makes the mask)");
  if (x.dim() != 4 || y.dim() != 4) throw Napi::RangeError::New(env, "alignment: x and y must be (N, C, H, W)");
  Napi::Object o = v.As<Napi::Object>();
  a.given = true;
  a.from.image_sizes = image_sizes_from_js(o.Get("sourceSizes"), "alignment.sourceSizes");
  a.from.stride = positive_int_from_js(o.Get("sourceStride"), "alignment.sourceStride");
  a.from.height = x.size(2);
  a.from.width = x.size(3);
  a.to.image_sizes = image_sizes_from_js(o.Get("targetSizes"), "alignment.targetSizes");
  a.to.stride = positive_int_from_js(o.Get("targetStride"), "alignment.targetStride");
  a.to.height = y.size(2);
  a.to.width = y.size(3);
  return a;
}

// x on y's grid and its mask, as alignMap gives them (float32), when an alignment is given.
void apply_alignment(const Alignment& a, at::Tensor& x, at::Tensor& mask) {
  if (!a.given) return;
  at::NoGradGuard no_grad;
  x = distill::align_map(x.to(at::kFloat), a.from, a.to).map;
  mask = distill::valid_mask(a.to, at::TensorOptions().dtype(at::kFloat));
}

LinearMoments moments_from_js(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to be {sx, sy, sxx, sxy, syy, n}"));
  Napi::Object o = v.As<Napi::Object>();
  LinearMoments m;
  m.sx = tensor_from_js(o.Get("sx"), what + ".sx").to(at::kDouble);
  m.sy = tensor_from_js(o.Get("sy"), what + ".sy").to(at::kDouble);
  m.sxx = tensor_from_js(o.Get("sxx"), what + ".sxx").to(at::kDouble);
  m.sxy = tensor_from_js(o.Get("sxy"), what + ".sxy").to(at::kDouble);
  for (const char* k : {"syy", "n"})
    if (!o.Get(k).IsNumber()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, ".", k, " to be a number"));
  m.syy = o.Get("syy").As<Napi::Number>().DoubleValue();
  m.n = o.Get("n").As<Napi::Number>().DoubleValue();
  const int64_t ca = m.sx.numel(), cb = m.sy.numel();
  if (m.sx.dim() != 1 || m.sy.dim() != 1 || m.sxx.sizes() != at::IntArrayRef({ca, ca}) ||
      m.sxy.sizes() != at::IntArrayRef({ca, cb}))
    throw Napi::RangeError::New(v.Env(), fmt(what, ": moments of inconsistent shapes"));
  return m;
}

// linearMoments(x, y, mask?, alignment?) -> {sx, sy, sxx, sxy (float64), syy, n}: one batch
// (order/linear_fit.h); with an alignment, x is on its own grid and aligned onto y's here.
Napi::Value LinearMomentsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
  at::Tensor x = tensor_from_js(arg(0), "x"), y = tensor_from_js(arg(1), "y");
  at::Tensor mask = optional_tensor(arg(2), "mask");
  Alignment al = alignment_from_js(arg(3), x, y, mask);
  return run_async<LinearMoments>(
      env,
      [x, y, mask, al]() mutable {
        LinearMoments m;
        run_fit([&] {
          apply_alignment(al, x, mask);
          m = linear_moments(x, y, mask);
          x = y = mask = at::Tensor();  // freed on the fit thread
        });
        return m;
      },
      [](Napi::Env env, LinearMoments& m) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("sx", tensor_to_js(env, host(m.sx)));
        o.Set("sy", tensor_to_js(env, host(m.sy)));
        o.Set("sxx", tensor_to_js(env, host(m.sxx)));
        o.Set("sxy", tensor_to_js(env, host(m.sxy)));
        o.Set("syy", m.syy);
        o.Set("n", m.n);
        return o;
      });
}

// solveLinearMoments(fit, held | null, ridge) -> {weight (C_B, C_A), bias (C_B) float64, ridge, pixels,
// trainSe (the map's squared error on fit + held, from the moments)}.
Napi::Value SolveLinearMomentsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
  LinearMoments fit = moments_from_js(arg(0), "fit");
  const bool has_held = !arg(1).IsUndefined() && !arg(1).IsNull();
  LinearMoments held = has_held ? moments_from_js(arg(1), "held") : LinearMoments{};
  if (!arg(2).IsNumber()) throw Napi::TypeError::New(env, "expected ridge to be a number");
  const double ridge = arg(2).As<Napi::Number>().DoubleValue();
  if (!std::isfinite(ridge)) throw Napi::RangeError::New(env, "ridge must be a finite number (negative: chosen automatically)");
  return run_async<LinearSolution>(
      env,
      [fit, held, has_held, ridge] {
        LinearSolution r;
        run_fit([&] { r = solve_linear_moments(fit, has_held ? &held : nullptr, ridge); });
        return r;
      },
      [](Napi::Env env, LinearSolution& s) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("weight", tensor_to_js(env, host(s.weight)));
        o.Set("bias", tensor_to_js(env, host(s.bias)));
        o.Set("ridge", s.ridge);
        o.Set("pixels", s.pixels);
        o.Set("trainSe", s.train_se);
        return o;
      });
}

// linearScore(x, y, mask?, weight, bias, alignment?) -> {se, count}: squared error of the map on
// one batch; with an alignment as linearMoments.
Napi::Value LinearScoreJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
  at::Tensor x = tensor_from_js(arg(0), "x"), y = tensor_from_js(arg(1), "y");
  at::Tensor mask = optional_tensor(arg(2), "mask");
  at::Tensor w = tensor_from_js(arg(3), "weight"), b = tensor_from_js(arg(4), "bias");
  Alignment al = alignment_from_js(arg(5), x, y, mask);
  return run_async<std::pair<double, int64_t>>(
      env,
      [x, y, mask, w, b, al]() mutable {
        std::pair<double, int64_t> r;
        run_fit([&] {
          apply_alignment(al, x, mask);
          r = linear_score(x, y, mask, w, b);
          x = y = mask = at::Tensor();
        });
        return r;
      },
      [](Napi::Env env, std::pair<double, int64_t>& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("se", r.first);
        o.Set("count", Napi::Number::New(env, static_cast<double>(r.second)));
        return o;
      });
}

ExportRegistrar reg_order("order", [](Napi::Env env, Napi::Object exports) {
  Napi::Object order = Napi::Object::New(env);
  order.Set("fitLinearMap", Napi::Function::New<FitLinearMap>(env, "fitLinearMap"));
  order.Set("linearMoments", Napi::Function::New<LinearMomentsJs>(env, "linearMoments"));
  order.Set("solveLinearMoments", Napi::Function::New<SolveLinearMomentsJs>(env, "solveLinearMoments"));
  order.Set("linearScore", Napi::Function::New<LinearScoreJs>(env, "linearScore"));
  exports.Set("order", order);
});

}  // namespace
}  // namespace mtpd::binding
