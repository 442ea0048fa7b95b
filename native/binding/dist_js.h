// JS handles of the data-parallel pieces (dist/process_group.h, dist/grad_sync.h), for the
// optimizer and distillation-step glue that attaches a gradient sync.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "dist/grad_sync.h"

namespace mtpd::binding {

// The GradSync of a JS handle from dist createGradSync(), or null for null/undefined.
std::shared_ptr<dist::GradSync> grad_sync_from_js(const Napi::Value& value, const std::string& what);

}  // namespace mtpd::binding
