// Deterministic release of native objects: dispose() on a handle drops its tensors (and, for a
// detector, its compute thread) now instead of when V8's collector gets round to the JS
// object, which cannot see how much native (or GPU) memory it holds. Every later call on the
// handle throws ERR_MTPD_DISPOSED naming the object and the method.
#pragma once

#include <napi.h>

#include <string>

namespace mtpd::binding {

// Error with code ERR_MTPD_DISPOSED: "<what>.<method>(): used after dispose()".
Napi::Error disposed_error(Napi::Env env, const std::string& what, const char* method);

// After a dispose: hands freed heap pages back to the OS (glibc keeps them per arena otherwise,
// and resident memory would only ever grow across stages) and empties the CUDA caching
// allocator when CUDA is in use.
void release_freed_memory();

}  // namespace mtpd::binding
