// JS handle over a libtorch module built from the registry. One call in flight at a time:
// a second concurrent call is rejected with ERR_MTPD_BUSY (the TS side queues instead).
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "core/registry.h"

namespace mtpd::binding {

class ModuleWrap : public Napi::ObjectWrap<ModuleWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Builds a registered module off the main thread; resolves to a ModuleWrap.
  static Napi::Value Create(const Napi::CallbackInfo& info);

  explicit ModuleWrap(const Napi::CallbackInfo& info);

  // For other binding files (distillation, detectors): the NativeModule behind a JS value, or
  // a TypeError naming `what`.
  static ModuleWrap* FromValue(const Napi::Value& value, const std::string& what);
  const BuiltModule& built() const { return built_; }
  const std::string& registry_name() const { return name_; }
  bool disposed() const { return !built_.module; }
  // Throws ERR_MTPD_DISPOSED after dispose().
  void check_alive(Napi::Env env, const char* method) const;
  // Claims the object for one async call (ERR_MTPD_BUSY otherwise); call the result when done.
  std::function<void()> claim_for(Napi::Env env, const char* method) {
    claim(env, method);
    return release();
  }

 protected:
  // Claims the object for one async call, or throws ERR_MTPD_BUSY.
  void claim(Napi::Env env, const char* method);
  std::function<void()> release();

  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value SetTraining(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  // dispose(): drops the module now (its tensors go when nothing else holds them); idempotent.
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::string name_;
  BuiltModule built_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
  std::string device_ = "cpu";
};

}  // namespace mtpd::binding
