#pragma once

#include <napi.h>

namespace mtpd::binding {

struct AddonData {
  Napi::FunctionReference module_ctor;
};

}  // namespace mtpd::binding
