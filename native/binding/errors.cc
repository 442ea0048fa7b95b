#include <c10/util/Exception.h>

#include <new>

#include "binding/worker.h"
#include "core/errors.h"

namespace mtpd::binding {

Failure current_failure() {
  try {
    throw;
  } catch (const ArgumentError& e) {
    return {ErrorKind::Type, e.what()};
  } catch (const ShapeError& e) {
    return {ErrorKind::Range, e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    return {ErrorKind::OutOfMemory, e.what_without_backtrace()};
  } catch (const c10::Error& e) {
    // libtorch's message without the C++ backtrace. CPU allocation failures are plain
    // c10::Errors ("DefaultCPUAllocator: can't allocate memory: ...").
    std::string msg = e.what_without_backtrace();
    const bool oom = msg.find("out of memory") != std::string::npos || msg.find("can't allocate memory") != std::string::npos;
    return {oom ? ErrorKind::OutOfMemory : ErrorKind::Torch, msg};
  } catch (const std::bad_alloc&) {
    return {ErrorKind::OutOfMemory, "out of memory (std::bad_alloc)"};
  } catch (const std::exception& e) {
    return {ErrorKind::Generic, e.what()};
  } catch (...) {
    return {ErrorKind::Generic, "unknown native error"};
  }
}

Napi::Error make_error(Napi::Env env, const Failure& f) {
  Napi::Error err;
  const char* code = "ERR_MTPD_NATIVE";
  switch (f.kind) {
    case ErrorKind::Type: err = Napi::TypeError::New(env, f.message); code = "ERR_MTPD_ARGUMENT"; break;
    case ErrorKind::Range: err = Napi::RangeError::New(env, f.message); code = "ERR_MTPD_SHAPE"; break;
    case ErrorKind::Torch: err = Napi::Error::New(env, f.message); code = "ERR_MTPD_TORCH"; break;
    case ErrorKind::OutOfMemory: err = Napi::Error::New(env, f.message); code = "ERR_MTPD_OUT_OF_MEMORY"; break;
    default: err = Napi::Error::New(env, f.message); break;
  }
  err.Set("code", Napi::String::New(env, code));
  return err;
}

}  // namespace mtpd::binding
