// N-API glue for distillation: the registered losses, a distiller's losses on given feature
// maps (with an in-C++ gradient check; aligned when the context gives both layouts), FGD's
// masks, and the alignment of one map onto another grid (distill/align.h, for the cost fit). The distiller itself is a registered
// module ("distill.Distiller"), so createModule / stateDict / loadStateDict / to work on it.
#include <napi.h>
#include <torch/torch.h>

#include "binding/convert.h"
#include "binding/exports.h"
#include "binding/layout_js.h"
#include "binding/module_wrap.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "distill/align.h"
#include "distill/distiller.h"
#include "distill/fgd.h"
#include "distill/loss.h"

namespace mtpd::binding {

namespace {

using distill::FeatureMap;
using distill::LossContext;

// {boxes?: Tensor[], imageSizes?: [h, w][], studentLayout?, teacherLayout?} (layouts: {imageSizes, strides})
struct ComputeContext {
  LossContext ctx;
  bool aligned = false;
  distill::MapLayout student, teacher;
};

ComputeContext context_from_js(const Napi::Value& v, const std::string& what) {
  ComputeContext c;
  if (v.IsUndefined() || v.IsNull()) return c;
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to be {boxes, imageSizes}"));
  Napi::Object o = v.As<Napi::Object>();
  if (o.Has("boxes") && !o.Get("boxes").IsUndefined()) c.ctx.boxes = tensors_from_js(o.Get("boxes"), what + ".boxes");
  if (o.Has("imageSizes") && !o.Get("imageSizes").IsUndefined())
    c.ctx.image_sizes = image_sizes_from_js(o.Get("imageSizes"), what + ".imageSizes");
  const bool hs = o.Has("studentLayout") && !o.Get("studentLayout").IsUndefined();
  const bool ht = o.Has("teacherLayout") && !o.Get("teacherLayout").IsUndefined();
  if (hs != ht)
    throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to give both studentLayout and teacherLayout, or neither"));
  if (hs) {
    c.aligned = true;
    c.student = layout_from_js(o.Get("studentLayout"), what + ".studentLayout");
    c.teacher = layout_from_js(o.Get("teacherLayout"), what + ".teacherLayout");
  }
  return c;
}

struct ComputeResult {
  std::vector<std::pair<std::string, double>> terms;
  double total = 0;
  std::map<std::string, std::string> adapters;
  bool grad = false;
  std::map<std::string, at::Tensor> student_grads;
  std::map<std::string, bool> teacher_grads;  // tap -> received any gradient
  std::vector<std::pair<std::string, double>> param_grads;  // name -> norm (-1: none)
};

Napi::Value Compute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModuleWrap* wrap = ModuleWrap::FromValue(info.Length() > 0 ? info[0] : env.Undefined(), "distiller");
  auto distiller = distill::as_distiller(wrap->built());
  if (!distiller)
    throw Napi::TypeError::New(env, fmt("expected distiller to be a distill.Distiller, got ", wrap->registry_name()));
  FeatureMap student = tensor_map_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "student");
  FeatureMap teacher = tensor_map_from_js(info.Length() > 2 ? info[2] : env.Undefined(), "teacher");
  ComputeContext cc = context_from_js(info.Length() > 3 ? info[3] : env.Undefined(), "context");
  bool grad = false;
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Value g = info[4].As<Napi::Object>().Get("grad");
    if (!g.IsUndefined()) {
      if (!g.IsBoolean()) throw Napi::TypeError::New(env, "expected options.grad to be a boolean");
      grad = g.As<Napi::Boolean>().Value();
    }
  }
  auto done = wrap->claim_for(env, "compute");
  return run_async<ComputeResult>(
      env,
      [distiller, student, teacher, cc, grad]() mutable {
        LossContext& ctx = cc.ctx;
        torch::AutoGradMode mode(grad);
        const auto params = distiller->parameters();
        const c10::Device dev = params.empty() ? c10::Device(c10::kCPU) : params[0].device();
        for (auto& [k, v] : student) v = v.to(dev).set_requires_grad(grad && v.is_floating_point());
        // With grad on, teacher maps are made leaves that ask for gradients: any leak shows.
        for (auto& [k, v] : teacher) v = v.to(dev).set_requires_grad(grad && v.is_floating_point());
        for (auto& b : ctx.boxes) b = b.to(dev);
        distill::DistillOutput out = cc.aligned ? distiller->forward(student, teacher, ctx, "distill.", &cc.student, &cc.teacher)
                                                : distiller->forward(student, teacher, ctx);
        ComputeResult r;
        for (const auto& [k, v] : out.terms) r.terms.emplace_back(k, v.item<double>());
        r.total = out.total.item<double>();
        r.adapters = out.adapters;
        r.grad = grad;
        if (grad) {
          for (auto& p : distiller->parameters())
            if (p.grad().defined()) p.mutable_grad().reset();
          out.total.backward();
          for (const auto& [k, v] : student) {
            if (v.grad().defined()) r.student_grads[k] = host(v.grad());
          }
          for (const auto& [k, v] : teacher) r.teacher_grads[k] = v.grad().defined() && v.grad().ne(0).any().item<bool>();
          for (auto& item : distiller->named_parameters()) {
            at::Tensor& p = item.value();
            r.param_grads.emplace_back(item.key(), p.grad().defined() ? p.grad().norm().item<double>() : -1.0);
            if (p.grad().defined()) p.mutable_grad().reset();
          }
        }
        return r;
      },
      [](Napi::Env env, ComputeResult& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        Napi::Object losses = Napi::Object::New(env);
        for (const auto& [k, v] : r.terms) losses.Set(k, v);
        o.Set("losses", losses);
        o.Set("total", r.total);
        Napi::Object adapters = Napi::Object::New(env);
        for (const auto& [k, v] : r.adapters) adapters.Set(k, v);
        o.Set("adapters", adapters);
        if (r.grad) {
          Napi::Object g = Napi::Object::New(env), sg = Napi::Object::New(env), tg = Napi::Object::New(env),
                       pg = Napi::Object::New(env);
          for (const auto& [k, v] : r.student_grads) sg.Set(k, tensor_to_js(env, v));
          for (const auto& [k, v] : r.teacher_grads) tg.Set(k, v);
          for (const auto& [k, v] : r.param_grads) pg.Set(k, v < 0 ? env.Null() : Napi::Number::New(env, v));
          g.Set("student", sg);
          g.Set("teacherReceived", tg);
          g.Set("params", pg);
          o.Set("grads", g);
        }
        return o;
      },
      done);
}

Napi::Value Losses(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  for (const auto& [name, doc] : distill::registered_losses()) o.Set(name, doc);
  return o;
}

// fgdMasks(context, n, h, w) -> {fg, bg}
Napi::Value FgdMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LossContext ctx = context_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "context").ctx;
  int64_t dims[3];
  const char* names[3] = {"n", "h", "w"};
  for (int i = 0; i < 3; ++i) {
    if (info.Length() <= static_cast<size_t>(i + 1) || !info[i + 1].IsNumber())
      throw Napi::TypeError::New(env, fmt("expected ", names[i], " to be a number"));
    const double x = info[i + 1].As<Napi::Number>().DoubleValue();
    if (!(x > 0) || std::floor(x) != x || x > 1e6)
      throw Napi::RangeError::New(env, fmt(names[i], " must be a positive integer, got ", x));
    dims[i] = static_cast<int64_t>(x);
  }
  if (static_cast<double>(dims[0]) * static_cast<double>(dims[1]) * static_cast<double>(dims[2]) > 1e8)
    throw Napi::RangeError::New(env, "n * h * w must be at most 1e8");
  return run_async<std::pair<at::Tensor, at::Tensor>>(
      env, [ctx, dims] { return distill::fgd_masks(ctx, dims[0], dims[1], dims[2], c10::Device(c10::kCPU)); },
      [](Napi::Env env, std::pair<at::Tensor, at::Tensor>& m) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("fg", tensor_to_js(env, host(m.first)));
        o.Set("bg", tensor_to_js(env, host(m.second)));
        return o;
      });
}

// alignMap(source (N, C, Hs, Ws), sourceSizes [h, w][], sourceStride, targetHW [Ht, Wt], targetSizes,
// targetStride, mode?) -> {aligned (N, C, Ht, Wt), mask (N, 1, Ht, Wt), whole}: distill/align.h.
Napi::Value AlignMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
  at::Tensor x = tensor_from_js(arg(0), "source");
  distill::Grid from, to;
  from.image_sizes = image_sizes_from_js(arg(1), "sourceSizes");
  from.stride = positive_int_from_js(arg(2), "sourceStride");
  Napi::Value hw = arg(3);
  if (!hw.IsArray() || hw.As<Napi::Array>().Length() != 2)
    throw Napi::TypeError::New(env, "expected targetHW to be [Ht, Wt]");
  to.height = positive_int_from_js(hw.As<Napi::Array>().Get(0u), "targetHW[0]");
  to.width = positive_int_from_js(hw.As<Napi::Array>().Get(1u), "targetHW[1]");
  to.image_sizes = image_sizes_from_js(arg(4), "targetSizes");
  to.stride = positive_int_from_js(arg(5), "targetStride");
  const std::string mode = optional_string_arg(info, 6, "mode", "bilinear");
  if (x.dim() != 4) throw Napi::RangeError::New(env, fmt("source must be (N, C, H, W), got ", x.dim(), " dimensions"));
  if (static_cast<double>(x.size(0)) * static_cast<double>(x.size(1)) * static_cast<double>(to.height) *
          static_cast<double>(to.width) >
      1e9)
    throw Napi::RangeError::New(env, "alignMap: N * C * Ht * Wt must be at most 1e9");
  from.height = x.size(2);
  from.width = x.size(3);
  struct Out {
    at::Tensor map, mask;
    bool whole;
  };
  return run_async<Out>(
      env,
      [x, from, to, mode] {
        at::NoGradGuard no_grad;
        distill::Aligned a = distill::align_map(x.to(at::kFloat), from, to, mode);
        return Out{host(a.map), host(distill::valid_mask(to, at::TensorOptions().dtype(at::kFloat))), a.whole};
      },
      [](Napi::Env env, Out& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("aligned", tensor_to_js(env, r.map));
        o.Set("mask", tensor_to_js(env, r.mask));
        o.Set("whole", r.whole);
        return o;
      });
}

ExportRegistrar reg_distill("distill", [](Napi::Env env, Napi::Object exports) {
  Napi::Object d = exports.Has("distill") ? exports.Get("distill").As<Napi::Object>() : Napi::Object::New(env);
  d.Set("losses", Napi::Function::New<Losses>(env, "losses"));
  d.Set("compute", Napi::Function::New<Compute>(env, "compute"));
  d.Set("fgdMasks", Napi::Function::New<FgdMasks>(env, "fgdMasks"));
  d.Set("alignMap", Napi::Function::New<AlignMap>(env, "alignMap"));
  exports.Set("distill", d);
});

}  // namespace
}  // namespace mtpd::binding
