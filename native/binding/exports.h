// Each binding file adds its exports through a registrar, so new areas (detectors,
// distillation, ...) plug in without editing addon.cc:
//   static ExportRegistrar reg("detectors", [](Napi::Env env, Napi::Object exports) { ... });
#pragma once

#include <napi.h>

#include <functional>
#include <string>
#include <vector>

namespace mtpd::binding {

using ExportInit = std::function<void(Napi::Env, Napi::Object)>;

struct ExportRegistrar {
  ExportRegistrar(const char* area, ExportInit init);
};

// Called once from the addon's Init.
void run_export_registrars(Napi::Env env, Napi::Object exports);

}  // namespace mtpd::binding
