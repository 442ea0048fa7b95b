#include "binding/detector_wrap.h"

#include <torch/torch.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "binding/convert.h"
#include "binding/dispose.h"
#include "binding/layout_js.h"
#include "binding/exports.h"
#include "binding/optimizer_wrap.h"
#include "binding/worker.h"
#include "core/errors.h"
#include "core/host_allocator.h"
#include "core/runtime.h"
#include "core/state_dict.h"
#include "models/memory_format.h"
#include "train/amp.h"

namespace mtpd::binding {

namespace {

Napi::FunctionReference* g_detector_ctor = nullptr;

struct PendingDetectorCall {
  std::string name;
  std::shared_ptr<Detector> detector;
  std::string device;
};

struct RunRequest {
  std::vector<at::Tensor> images;
  bool has_targets = false;
  std::vector<Target> targets;
  RunOptions what;
  bool grad = false;
  bool amp = false;  // what.amp: the forward pass under autocast (train/amp.h)
};

struct RunResult {
  std::map<std::string, double> losses;
  std::map<std::string, at::Tensor> features;
  std::vector<Detection> detections;
  std::vector<ImageSize> image_sizes, original_sizes;
  ImageSize batch_size{0, 0};
  double grad_norm = 0, scale = 1, lr = 0;
  bool skipped = false;
};

Napi::Error busy_error(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, "ERR_MTPD_BUSY"));
  return e;
}

Napi::Array sizes_to_js(Napi::Env env, const std::vector<ImageSize>& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    Napi::Array p = Napi::Array::New(env, 2);
    p.Set(0u, Napi::Number::New(env, static_cast<double>(s[i][0])));
    p.Set(1u, Napi::Number::New(env, static_cast<double>(s[i][1])));
    a.Set(static_cast<uint32_t>(i), p);
  }
  return a;
}

Napi::Object result_to_js(Napi::Env env, RunResult& r) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Object losses = Napi::Object::New(env);
  for (const auto& [k, v] : r.losses) losses.Set(k, Napi::Number::New(env, v));
  o.Set("losses", losses);
  Napi::Object feats = Napi::Object::New(env);
  for (const auto& [k, v] : r.features) feats.Set(k, tensor_to_js(env, v));
  o.Set("features", feats);
  Napi::Array dets = Napi::Array::New(env, r.detections.size());
  for (size_t i = 0; i < r.detections.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("boxes", tensor_to_js(env, r.detections[i].boxes));
    d.Set("scores", tensor_to_js(env, r.detections[i].scores));
    d.Set("labels", tensor_to_js(env, r.detections[i].labels));
    // Mask R-CNN: (D, 1, H, W) mask probabilities in the original image's pixels
    if (r.detections[i].masks.defined()) d.Set("masks", tensor_to_js(env, r.detections[i].masks));
    dets.Set(static_cast<uint32_t>(i), d);
  }
  o.Set("detections", dets);
  o.Set("imageSizes", sizes_to_js(env, r.image_sizes));
  o.Set("originalSizes", sizes_to_js(env, r.original_sizes));
  o.Set("batchSize", sizes_to_js(env, {r.batch_size}).Get(0u));
  return o;
}

RunOptions run_options_from_js(const Napi::Value& v) {
  RunOptions w;
  if (v.IsUndefined() || v.IsNull()) return w;
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "expected what to be {losses?, features?, detections?}");
  Napi::Object o = v.As<Napi::Object>();
  auto flag = [&](const char* k) {
    Napi::Value f = o.Get(k);
    if (f.IsUndefined()) return false;
    if (!f.IsBoolean()) throw Napi::TypeError::New(v.Env(), fmt("expected what.", k, " to be a boolean"));
    return f.As<Napi::Boolean>().Value();
  };
  w.losses = flag("losses");
  w.features = flag("features");
  w.detections = flag("detections");
  return w;
}

RunResult host_result(DetectorOutput& out) {
  RunResult r;
  for (auto& [k, v] : out.losses) r.losses[k] = v.detach().to(at::kCPU, at::kDouble).item<double>();
  for (auto& [k, v] : out.features) r.features[k] = host(v.to(at::kFloat));
  // float32 boxes, scores and masks also when the forward pass ran under autocast (a no-op otherwise).
  for (auto& d : out.detections) {
    r.detections.push_back({host(d.boxes.to(at::kFloat)), host(d.scores.to(at::kFloat)), host(d.labels),
                            d.masks.defined() ? host(d.masks.to(at::kFloat)) : at::Tensor()});
  }
  r.image_sizes = out.image_sizes;
  r.original_sizes = out.original_sizes;
  r.batch_size = out.batch_size;
  return r;
}

}  // namespace

struct SerialExecutor::State {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> q;
  bool stop = false;
  std::thread th;
};

SerialExecutor::SerialExecutor() : state_(std::make_shared<State>()) {
  auto s = state_;
  s->th = std::thread([s] {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(s->mu);
        s->cv.wait(lock, [&] { return s->stop || !s->q.empty(); });
        if (s->q.empty()) return;
        task = std::move(s->q.front());
        s->q.pop_front();
      }
      task();
    }
  });
}

SerialExecutor::~SerialExecutor() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  if (state_->th.joinable()) {
    if (state_->th.get_id() == std::this_thread::get_id()) state_->th.detach();
    else state_->th.join();
  }
}

void SerialExecutor::run(const std::function<void()>& fn) {
  std::mutex m;
  std::condition_variable done_cv;
  bool done = false;
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->q.push_back([&] {
      try {
        apply_thread_settings();
        fn();
      } catch (...) {
        err = std::current_exception();
      }
#if defined(__GLIBC__)
      // MTPD_MALLOC_TRIM=1: hand the freed working set of each call back to the OS (the host
      // cache's empty segments, glibc's free heap pages), at the price of re-faulting it on the
      // next call. With the segment cache it pays only where a call's moments need different
      // sizes (worker.mjs ARCH 2 512 3 2, two runs each): Mask R-CNN peak RSS 1499-1508 MiB
      // against 1641-1654, inference 17-45% and train step 24-29% slower; RetinaNet R18 peak 830
      // against 813 MiB, 30-45% slower.
      static const bool trim = [] {
        const char* v = std::getenv("MTPD_MALLOC_TRIM");
        return v && *v && std::string(v) != "0";
      }();
      if (trim) {
        release_cached_host_memory();
        malloc_trim(0);
      }
#endif
      std::lock_guard<std::mutex> l(m);
      done = true;
      done_cv.notify_one();
    });
  }
  state_->cv.notify_one();
  std::unique_lock<std::mutex> lock(m);
  done_cv.wait(lock, [&] { return done; });
  if (err) std::rethrow_exception(err);
}

at::Tensor image_to_chw_float(const at::Tensor& t) {
  if (t.scalar_type() == at::kByte && t.dim() == 3 && t.size(2) == 3) {
    // Converted straight into a contiguous (3, H, W) float: one float copy of the image, not a
    // strided one and then its contiguous copy (a 12000 x 12000 photo is 1.7 GB as float).
    at::Tensor out = at::empty({3, t.size(0), t.size(1)}, t.options().dtype(at::kFloat));
    out.copy_(t.permute({2, 0, 1}));
    return out.div_(255.0);
  }
  // (3, H, W) uint8 (a loader batch cut per image without converting in JS).
  if (t.scalar_type() == at::kByte && t.dim() == 3 && t.size(0) == 3) return t.to(at::kFloat).div_(255.0);
  return t;
}

std::vector<Target> targets_from_js(const Napi::Value& value, const std::string& what) {
  Napi::Env env = value.Env();
  if (!value.IsArray()) throw Napi::TypeError::New(env, fmt("expected ", what, " to be an array of {boxes, labels}"));
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<Target> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    const std::string w = fmt(what, "[", i, "]");
    if (!e.IsObject()) throw Napi::TypeError::New(env, fmt("expected ", w, " to be {boxes, labels}"));
    Napi::Object o = e.As<Napi::Object>();
    Target t;
    t.boxes = tensor_from_js(o.Get("boxes"), w + ".boxes");
    t.labels = tensor_from_js(o.Get("labels"), w + ".labels");
    if (o.Has("masks") && !o.Get("masks").IsUndefined()) t.masks = tensor_from_js(o.Get("masks"), w + ".masks");
    out.push_back(std::move(t));
  }
  return out;
}

DetectorWrap* detector_from_js(const Napi::Value& value, const std::string& what) {
  Napi::Env env = value.Env();
  if (!g_detector_ctor || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(g_detector_ctor->Value()))
    throw Napi::TypeError::New(env, fmt("expected ", what, " to be a detector (from createDetector)"));
  return Napi::ObjectWrap<DetectorWrap>::Unwrap(value.As<Napi::Object>());
}

Napi::Function DetectorWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeDetector",
                     {
                         InstanceMethod<&DetectorWrap::Info>("info"),
                         InstanceMethod<&DetectorWrap::SetTraining>("setTraining"),
                         InstanceMethod<&DetectorWrap::StateDict>("stateDict"),
                         InstanceMethod<&DetectorWrap::LoadStateDict>("loadStateDict"),
                         InstanceMethod<&DetectorWrap::To>("to"),
                         InstanceMethod<&DetectorWrap::Run>("run"),
                         InstanceMethod<&DetectorWrap::TrainStep>("trainStep"),
                         InstanceMethod<&DetectorWrap::EvalImageSizes>("evalImageSizes"),
                         InstanceMethod<&DetectorWrap::RoiScales>("roiScales"),
                         InstanceMethod<&DetectorWrap::SetRoiScales>("setRoiScales"),
                         InstanceMethod<&DetectorWrap::Dispose>("dispose"),
                     });
}

DetectorWrap::DetectorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DetectorWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "NativeDetector is created by createDetector(), not with new");
  auto* p = info[0].As<Napi::External<PendingDetectorCall>>().Data();
  name_ = p->name;
  detector_ = p->detector;
  device_ = p->device;
}

Napi::Value DetectorWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = string_arg(info, 0, "name");
  const std::string options =
      info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "{}";
  const std::string device = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "cpu";
  // memoryFormat: "contiguous" (default) or "channels_last" (models/memory_format.h)
  if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsString())
    throw Napi::TypeError::New(env, "expected memoryFormat to be a string");
  const std::string memory_format =
      info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "contiguous";
  return run_async<std::shared_ptr<PendingDetectorCall>>(
      env,
      [name, options, device, memory_format] {
        Json o;
        try {
          o = Json::parse(options);
        } catch (const std::exception& e) {
          throw ArgumentError(fmt("options for \"", name, "\" are not valid JSON: ", e.what()));
        }
        const c10::Device dev = parse_device(device);
        const at::MemoryFormat format = parse_memory_format(memory_format, "memoryFormat");
        auto p = std::make_shared<PendingDetectorCall>();
        p->name = name;
        p->detector = build_detector(name, o);
        if (format != at::MemoryFormat::Contiguous) to_memory_format(*p->detector, format);
        p->detector->to(dev);
        p->detector->eval();
        p->device = dev.str();
        return p;
      },
      [](Napi::Env env, std::shared_ptr<PendingDetectorCall>& p) -> Napi::Value {
        return g_detector_ctor->New({Napi::External<PendingDetectorCall>::New(env, p.get())});
      });
}

void DetectorWrap::check_alive(Napi::Env env, const char* method) const {
  if (disposed()) throw disposed_error(env, name_, method);
}

Napi::Value DetectorWrap::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed()) return env.Undefined();
  if (busy_->load()) throw busy_error(env, fmt(name_, ".dispose(): a call on this model is still running; await it first"));
  detector_.reset();
  exec_.reset();  // joins the idle compute thread
  release_freed_memory();
  return env.Undefined();
}

std::function<void()> DetectorWrap::claim(Napi::Env env, const char* method) {
  check_alive(env, method);
  bool expected = false;
  if (!busy_->compare_exchange_strong(expected, true))
    throw busy_error(env, fmt(name_, ".", method, "(): another call on this model is still running; await it first"));
  Ref();
  return [this] {
    busy_->store(false);
    Unref();
  };
}

Napi::Value DetectorWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env, "info");
  Napi::Object o = Napi::Object::New(env);
  int64_t total = 0, trainable = 0;
  for (const auto& p : detector_->parameters()) {
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  o.Set("name", name_);
  o.Set("arch", detector_->arch());
  o.Set("device", device_);
  o.Set("training", detector_->is_training());
  o.Set("parameters", Napi::Number::New(env, static_cast<double>(total)));
  o.Set("trainableParameters", Napi::Number::New(env, static_cast<double>(trainable)));
  o.Set("hasForward", false);
  o.Set("numClasses", Napi::Number::New(env, static_cast<double>(detector_->num_classes())));
  o.Set("featureChannels", Napi::Number::New(env, static_cast<double>(detector_->feature_channels())));
  const auto names = detector_->feature_names();
  const auto strides = detector_->feature_strides();
  Napi::Array fn = Napi::Array::New(env, names.size()), fs = Napi::Array::New(env, strides.size());
  for (size_t i = 0; i < names.size(); ++i) fn.Set(static_cast<uint32_t>(i), names[i]);
  for (size_t i = 0; i < strides.size(); ++i) fs.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(strides[i])));
  o.Set("featureNames", fn);
  o.Set("featureStrides", fs);
  o.Set("config", detector_->config().dump());
  o.Set("memoryFormat", memory_format_name(*detector_));
  return o;
}

Napi::Value DetectorWrap::SetTraining(const Napi::CallbackInfo& info) {
  const bool on = bool_arg(info, 0, "training");
  check_alive(info.Env(), "setTraining");
  if (busy_->load()) throw busy_error(info.Env(), fmt(name_, ".setTraining(): a call on this model is still running"));
  detector_->train(on);
  return info.Env().Undefined();
}

Napi::Value DetectorWrap::StateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto done = claim(env, "stateDict");
  auto det = detector_;
  auto exec = exec_;
  return run_async<NamedTensors>(
      env,
      [det, exec] {
        NamedTensors out;
        exec->run([&] {
          for (auto& [k, v] : state_dict(*det)) out.emplace_back(k, host(v));
        });
        return out;
      },
      [](Napi::Env env, NamedTensors& sd) -> Napi::Value { return state_dict_to_js(env, sd); },
      done);
}

Napi::Value DetectorWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool strict = true;
  NamedTensors sd = state_dict_args(info, 0, strict);
  auto done = claim(env, "loadStateDict");
  auto det = detector_;
  auto exec = exec_;
  return run_async<LoadReport>(
      env,
      [det, exec, sd = std::move(sd), strict] {
        LoadReport r;
        exec->run([&] { r = load_state_dict(*det, sd, strict); });
        return r;
      },
      [](Napi::Env env, LoadReport& r) -> Napi::Value { return load_report_to_js(env, r); },
      done);
}

Napi::Value DetectorWrap::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string device = string_arg(info, 0, "device");
  auto done = claim(env, "to");
  auto det = detector_;
  auto exec = exec_;
  return run_async<std::string>(
      env,
      [det, exec, device] {
        const c10::Device dev = parse_device(device);
        exec->run([&] { det->to(dev); });
        return dev.str();
      },
      [this](Napi::Env env, std::string& dev) -> Napi::Value {
        device_ = dev;
        return Napi::String::New(env, dev);
      },
      done);
}

// run(images, targets | null, what, grad = false)
Napi::Value DetectorWrap::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto req = std::make_shared<RunRequest>();
  req->images = tensors_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "images");
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) {
    req->targets = targets_from_js(info[1], "targets");
    req->has_targets = true;
  }
  req->what = run_options_from_js(info.Length() > 2 ? info[2] : env.Undefined());
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Value a = info[2].As<Napi::Object>().Get("amp");
    if (!a.IsUndefined()) {
      if (!a.IsBoolean()) throw Napi::TypeError::New(env, "expected what.amp to be a boolean");
      req->amp = a.As<Napi::Boolean>().Value();
    }
  }
  req->grad = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  if (req->what.losses && !req->has_targets)
    throw Napi::TypeError::New(env, fmt(name_, ".run(): what.losses needs targets"));
  auto done = claim(env, "run");
  auto det = detector_;
  auto exec = exec_;
  return run_async<RunResult>(
      env,
      [det, exec, req] {
        RunResult r;
        exec->run([&] {
          at::AutoGradMode grad_mode(req->grad);
          for (auto& im : req->images) im = image_to_chw_float(im);
          DetectorOutput out;
          {
            train::AutocastScope autocast(det->device(), req->amp);
            out = det->run(req->images, req->has_targets ? &req->targets : nullptr, req->what);
          }
          r = host_result(out);
        });
        return r;
      },
      [](Napi::Env env, RunResult& r) -> Napi::Value { return result_to_js(env, r); }, done);
}

// trainStep(optimizer, images, targets, {lossWeights?}) -> {losses, loss, gradNorm, skipped, scale, lr}
Napi::Value DetectorWrap::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OptimizerWrap* ow = optimizer_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "optimizer");
  if (ow->owner() != detector_.get())
    throw Napi::TypeError::New(env, fmt(name_, ".trainStep(): the optimizer was created for another model"));
  auto req = std::make_shared<RunRequest>();
  req->images = tensors_from_js(info.Length() > 1 ? info[1] : env.Undefined(), "images");
  req->targets = targets_from_js(info.Length() > 2 ? info[2] : env.Undefined(), "targets");
  req->has_targets = true;
  req->what.losses = true;
  auto opt = ow->optimizer();
  auto done = claim(env, "trainStep");
  auto det = detector_;
  auto exec = exec_;
  return run_async<RunResult>(
      env,
      [det, exec, req, opt] {
        RunResult r;
        exec->run([&] {
          at::AutoGradMode grad_mode(true);
          for (auto& im : req->images) im = image_to_chw_float(im);
          const bool amp = opt->options().amp;
          DetectorOutput out;
          {
            // Mixed precision: autocast only around the forward pass.
            train::AutocastScope autocast(det->device(), amp);
            out = det->run(req->images, &req->targets, req->what);
          }
          at::Tensor total;
          for (auto& [k, v] : out.losses) total = total.defined() ? total + v.to(at::kFloat) : v.to(at::kFloat);
          train::StepResult s = opt->step(total);
          out.features.clear();
          r = host_result(out);
          r.grad_norm = s.grad_norm;
          r.skipped = s.skipped;
          r.scale = s.scale;
          r.lr = opt->lr();
        });
        return r;
      },
      [](Napi::Env env, RunResult& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        Napi::Object losses = Napi::Object::New(env);
        double total = 0;
        for (const auto& [k, v] : r.losses) {
          losses.Set(k, Napi::Number::New(env, v));
          total += v;
        }
        o.Set("losses", losses);
        o.Set("loss", Napi::Number::New(env, total));
        o.Set("gradNorm", Napi::Number::New(env, r.grad_norm));
        o.Set("skipped", Napi::Boolean::New(env, r.skipped));
        o.Set("scale", Napi::Number::New(env, r.scale));
        o.Set("lr", Napi::Number::New(env, r.lr));
        return o;
      },
      done);
}

Napi::Value DetectorWrap::EvalImageSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env, "evalImageSizes");
  const auto sizes = image_sizes_from_js(info.Length() > 0 ? info[0] : env.Undefined(), "sizes");
  // Arithmetic on the transform's options only: no tensor work, safe while a call runs.
  const auto out = guarded(env, [&] { return detector_->eval_image_sizes(sizes); });
  return image_sizes_to_js(env, out);
}

Napi::Value DetectorWrap::RoiScales(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env, "roiScales");
  if (busy_->load()) throw busy_error(env, fmt(name_, ".roiScales(): a call on this model is still running; await it first"));
  const auto scales = detector_->roi_scales();
  Napi::Array out = Napi::Array::New(env, scales.size());
  for (size_t i = 0; i < scales.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, scales[i]));
  return out;
}

Napi::Value DetectorWrap::SetRoiScales(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_alive(env, "setRoiScales");
  if (busy_->load()) throw busy_error(env, fmt(name_, ".setRoiScales(): a call on this model is still running; await it first"));
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "setRoiScales: scales must be an array of numbers");
  const auto arr = info[0].As<Napi::Array>();
  std::vector<double> scales;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const Napi::Value v = arr.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, fmt("setRoiScales: scales[", i, "] must be a number"));
    scales.push_back(v.As<Napi::Number>().DoubleValue());
  }
  guarded(env, [&] { detector_->set_roi_scales(scales); });
  return env.Undefined();
}

namespace {
Napi::Value ListDetectorsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, doc] : registered_modules()) {
    // Only registry entries whose default build is a detector are listed; building is cheap
    // enough to skip, so detectors mark themselves in their doc string instead.
    if (doc.find("RetinaNet") != std::string::npos || doc.find("Mask R-CNN") != std::string::npos) o.Set(name, doc);
  }
  return o;
}

ExportRegistrar reg_detectors("detectors", [](Napi::Env env, Napi::Object exports) {
  g_detector_ctor = new Napi::FunctionReference(Napi::Persistent(DetectorWrap::Define(env)));
  env.AddCleanupHook([] {
    delete g_detector_ctor;
    g_detector_ctor = nullptr;
  });
  exports.Set("createDetector", Napi::Function::New<DetectorWrap::Create>(env, "createDetector"));
  exports.Set("listDetectors", Napi::Function::New<ListDetectorsJs>(env, "listDetectors"));
});
}  // namespace

}  // namespace mtpd::binding
