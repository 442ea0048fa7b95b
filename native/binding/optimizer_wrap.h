// JS handle over a train::Optimizer built for a detector's trainable parameters.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "train/optimizer.h"

namespace mtpd::binding {

class DetectorWrap;

class OptimizerWrap : public Napi::ObjectWrap<OptimizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Value Create(const Napi::CallbackInfo& info);  // createOptimizer(detector, optionsJson)
  explicit OptimizerWrap(const Napi::CallbackInfo& info);
  std::shared_ptr<train::Optimizer> optimizer() const { return optimizer_; }
  // The detector whose parameters it updates (identity check in trainStep).
  const void* owner() const { return owner_; }
  // Throws ERR_MTPD_DISPOSED after dispose() (or after the detector's).
  void check_alive(Napi::Env env, const char* method) const;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value SetLr(const Napi::CallbackInfo& info);
  Napi::Value Lr(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);
  // dispose(): drops the optimizer state (momentum buffers, moments, its references to the
  // parameters) and the hold on the detector's handle; idempotent.
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value SetGradSync(const Napi::CallbackInfo& info);
  std::shared_ptr<train::Optimizer> optimizer_;
  const void* owner_ = nullptr;
  // The detector (its JS handle kept alive): state calls claim it and run on its compute thread.
  DetectorWrap* detector_ = nullptr;
  Napi::ObjectReference detector_ref_;
};

OptimizerWrap* optimizer_from_js(const Napi::Value& value, const std::string& what);

}  // namespace mtpd::binding
