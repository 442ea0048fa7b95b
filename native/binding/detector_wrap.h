// JS handle over a registered Detector (models/detector.h). Same surface as NativeModule for
// weights (info, setTraining, stateDict, loadStateDict, to) plus run() and trainStep(). One call
// in flight at a time (ERR_MTPD_BUSY otherwise); other binding areas (distillation) reach the
// C++ detector through detector_from_js() and claim it for the duration of their own calls.
#pragma once

#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "models/detector.h"

namespace mtpd::binding {

// Runs every compute call of one model on the same OS thread. libuv hands successive calls to
// different pool threads, and glibc gives each thread its own malloc arena, so a model's
// working set would be cached once per pool thread (about 1.6-1.9x torchvision's peak RSS in
// scripts/bench/detectors.mjs). One thread per model keeps it to one arena and keeps
// thread-local state (grad mode, autocast) in one place.
class SerialExecutor {
 public:
  SerialExecutor();
  ~SerialExecutor();
  // Runs fn on the executor thread and waits; exceptions propagate unchanged.
  void run(const std::function<void()>& fn);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

class DetectorWrap : public Napi::ObjectWrap<DetectorWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Value Create(const Napi::CallbackInfo& info);
  explicit DetectorWrap(const Napi::CallbackInfo& info);

  std::shared_ptr<Detector> detector() const { return detector_; }
  const std::string& name() const { return name_; }
  // Claims the detector for one async call, or throws ERR_MTPD_BUSY; the returned function
  // releases it (call it from the worker's finally).
  std::function<void()> claim(Napi::Env env, const char* method);
  // The model's compute thread (see SerialExecutor).
  std::shared_ptr<SerialExecutor> executor() const { return exec_; }
  bool disposed() const { return !detector_; }
  // Throws ERR_MTPD_DISPOSED after dispose().
  void check_alive(Napi::Env env, const char* method) const;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value SetTraining(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  // evalImageSizes([[h, w], ...]) -> [[h, w], ...]: the eval-mode resize rule alone (synchronous).
  Napi::Value EvalImageSizes(const Napi::CallbackInfo& info);
  Napi::Value RoiScales(const Napi::CallbackInfo& info);
  Napi::Value SetRoiScales(const Napi::CallbackInfo& info);
  // dispose(): drops the model and stops its compute thread now (idempotent; ERR_MTPD_BUSY
  // while a call runs). Optimizers and distillation steps over it hold its parameters until
  // they are disposed too.
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::string name_;
  std::shared_ptr<Detector> detector_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
  std::string device_ = "cpu";
  std::shared_ptr<SerialExecutor> exec_ = std::make_shared<SerialExecutor>();
};

// The DetectorWrap behind a JS value (a handle from createDetector), or a TypeError naming `what`.
DetectorWrap* detector_from_js(const Napi::Value& value, const std::string& what);

// Images from JS: float32 (3, H, W) in 0..1, or uint8 (H, W, 3) (decoded image bytes). Done in
// Execute(): converts uint8 HWC to float CHW / 255.
at::Tensor image_to_chw_float(const at::Tensor& t);
// Targets from JS: [{boxes: (K, 4) float, labels: (K) int}], parsed on the main thread.
std::vector<Target> targets_from_js(const Napi::Value& value, const std::string& what);

}  // namespace mtpd::binding
