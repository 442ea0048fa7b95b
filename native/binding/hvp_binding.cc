// N-API glue for Hessian-vector products of a detector's detection loss (train/hvp.h) and the
// list of its parameters (names, shapes, trainable) that the analysis perturbs:
//   detectorHvp(detector, images, targets, names, vectors) -> {losses, names, gradient, product}
//   detectorParameters(detector) -> [{name, shape, trainable}]
#include <torch/nn/module.h>

#include "binding/convert.h"
#include "binding/detector_wrap.h"
#include "binding/exports.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "train/hvp.h"

namespace mtpd::binding {

namespace {

struct HvpRequest {
  std::vector<at::Tensor> images;
  std::vector<Target> targets;
  std::vector<std::string> names;
  std::vector<at::Tensor> vectors;
};

struct HvpOut {
  std::map<std::string, double> losses;
  std::vector<std::string> names;
  std::vector<at::Tensor> gradient, product;
};

Napi::Value DetectorHvpJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DetectorWrap* dw = detector_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "detector");
  auto req = std::make_shared<HvpRequest>();
  req->images = tensors_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "images");
  req->targets = targets_from_js(info.Length() > 2 ? info[2] : env.Undefined(), "targets");
  if (req->images.size() != req->targets.size())
    throw Napi::RangeError::New(env, fmt("hvp: ", req->images.size(), " images but ", req->targets.size(), " targets"));
  req->names = strings_arg(info.Length() > 3 ? info[3] : env.Undefined(), "names");
  req->vectors = tensors_from_js(info.Length() > 4 ? info[4] : env.Undefined(), "vectors");
  if (req->names.size() != req->vectors.size())
    throw Napi::RangeError::New(env, fmt("hvp: ", req->names.size(), " names but ", req->vectors.size(), " vectors"));
  auto done = dw->claim(env, "hvp");
  auto det = dw->detector();
  auto exec = dw->executor();
  return run_async<HvpOut>(
      env,
      [det, exec, req] {
        HvpOut o;
        exec->run([&] {
          for (auto& im : req->images) im = image_to_chw_float(im);
          train::DetectionHvp r = train::detection_hvp(*det, req->images, req->targets, req->names, req->vectors);
          o.losses = std::move(r.losses);
          o.names = std::move(r.names);
          for (auto& g : r.gradient) o.gradient.push_back(host(g.to(at::kFloat)));
          for (auto& p : r.product) o.product.push_back(host(p.to(at::kFloat)));
        });
        return o;
      },
      [](Napi::Env env, HvpOut& o) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        Napi::Object losses = Napi::Object::New(env);
        for (const auto& [k, v] : o.losses) losses.Set(k, Napi::Number::New(env, v));
        r.Set("losses", losses);
        Napi::Array names = Napi::Array::New(env, o.names.size());
        for (size_t i = 0; i < o.names.size(); ++i) names.Set(static_cast<uint32_t>(i), o.names[i]);
        r.Set("names", names);
        r.Set("gradient", tensors_to_js(env, o.gradient));
        r.Set("product", tensors_to_js(env, o.product));
        return r;
      },
      done);
}

Napi::Value DetectorParametersJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DetectorWrap* dw = detector_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "detector");
  // Metadata only (names, shapes, flags), as info() reads it: no tensor work.
  const auto named = dw->detector()->named_parameters(/*recurse=*/true);
  Napi::Array out = Napi::Array::New(env, named.size());
  uint32_t i = 0;
  for (const auto& item : named) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", item.key());
    const auto sizes = item.value().sizes();
    Napi::Array shape = Napi::Array::New(env, sizes.size());
    for (size_t d = 0; d < sizes.size(); ++d) shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(sizes[d])));
    o.Set("shape", shape);
    o.Set("trainable", Napi::Boolean::New(env, item.value().requires_grad()));
    out.Set(i++, o);
  }
  return out;
}

ExportRegistrar reg_hvp("hvp", [](Napi::Env env, Napi::Object exports) {
  exports.Set("detectorHvp", Napi::Function::New<DetectorHvpJs>(env, "detectorHvp"));
  exports.Set("detectorParameters", Napi::Function::New<DetectorParametersJs>(env, "detectorParameters"));
});

}  // namespace

}  // namespace mtpd::binding
