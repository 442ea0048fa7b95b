// The baton way: arguments are parsed into plain C++ values on the main thread, Execute()
// runs on a libuv worker thread and never touches N-API, OnOK turns results into JS values,
// and the caller gets a Promise. Exceptions from model code become JS errors (errors.h).
#pragma once

#include <napi.h>

#include <functional>
#include <string>
#include <utility>

#include "core/runtime.h"

namespace mtpd::binding {

enum class ErrorKind { Generic, Type, Range, Torch, OutOfMemory };

struct Failure {
  ErrorKind kind = ErrorKind::Generic;
  std::string message;
};

// Classifies the exception in flight (call inside a catch block).
Failure current_failure();
Napi::Error make_error(Napi::Env env, const Failure& f);

// Runs fn on the main thread, turning any C++ exception into a thrown JS error.
template <typename F>
auto guarded(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw make_error(env, current_failure());
  }
}

template <typename R>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Exec = std::function<R()>;
  using Ok = std::function<Napi::Value(Napi::Env, R&)>;
  using Finally = std::function<void()>;

  PromiseWorker(Napi::Env env, Exec exec, Ok ok, Finally fin)
      : Napi::AsyncWorker(env, "mtpd:native"),
        deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)),
        ok_(std::move(ok)),
        finally_(std::move(fin)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      apply_thread_settings();
      result_ = exec_();
    } catch (...) {
      failure_ = current_failure();
      // AsyncWorker tells failure from success by a non-empty message: an exception with an
      // empty what() would otherwise resolve the promise with a default-constructed result.
      if (failure_.message.empty()) failure_.message = "native error without a message";
      SetError(failure_.message);
    }
  }

  void OnOK() override {
    if (finally_) finally_();
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(ok_(env, result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(make_error(env, current_failure()).Value());
    }
  }

  void OnError(const Napi::Error&) override {
    if (finally_) finally_();
    Napi::HandleScope scope(Env());
    deferred_.Reject(make_error(Env(), failure_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Exec exec_;
  Ok ok_;
  Finally finally_;
  R result_{};
  Failure failure_;
};

template <typename R>
Napi::Promise run_async(Napi::Env env, typename PromiseWorker<R>::Exec exec, typename PromiseWorker<R>::Ok ok,
                        typename PromiseWorker<R>::Finally fin = {}) {
  auto* w = new PromiseWorker<R>(env, std::move(exec), std::move(ok), std::move(fin));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace mtpd::binding
