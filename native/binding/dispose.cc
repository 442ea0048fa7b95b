#include "binding/dispose.h"

#include <ATen/Context.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(MTPD_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "core/errors.h"

namespace mtpd::binding {

Napi::Error disposed_error(Napi::Env env, const std::string& what, const char* method) {
  Napi::Error e = Napi::Error::New(env, fmt(what, ".", method, "(): used after dispose()"));
  e.Set("code", Napi::String::New(env, "ERR_MTPD_DISPOSED"));
  return e;
}

void release_freed_memory() {
#if defined(MTPD_WITH_CUDA)
  if (at::hasCUDA()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace mtpd::binding
