// Tensors cross the boundary as descriptors {dtype, shape, data: TypedArray}.
#pragma once

#include <ATen/core/Tensor.h>
#include <napi.h>

#include <map>
#include <string>
#include <vector>

#include "core/state_dict.h"

namespace mtpd::binding {

// Copies a JS descriptor into a new CPU tensor. `what` names the argument in errors
// ("images[2]"). Throws Napi::TypeError / Napi::RangeError.
at::Tensor tensor_from_js(const Napi::Value& value, const std::string& what);
std::vector<at::Tensor> tensors_from_js(const Napi::Value& value, const std::string& what);
// {name: descriptor} (e.g. an FPN's maps by tap) into name -> tensor; errors name "what.name".
std::map<std::string, at::Tensor> tensor_map_from_js(const Napi::Value& value, const std::string& what);

// The tensor must already be on the CPU and contiguous (do that in Execute()).
Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& t);
Napi::Array tensors_to_js(Napi::Env env, const std::vector<at::Tensor>& ts);
// For Execute(): device -> CPU, contiguous, detached.
at::Tensor host(const at::Tensor& t);

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const std::string& what);
// Missing/undefined -> fallback; anything but a string -> TypeError.
std::string optional_string_arg(const Napi::CallbackInfo& info, size_t i, const std::string& what,
                                const std::string& fallback);
bool bool_arg(const Napi::CallbackInfo& info, size_t i, const std::string& what);
std::vector<std::string> strings_arg(const Napi::Value& v, const std::string& what);

// State dicts across the boundary: loadStateDict(names, tensors, strict) arguments at
// info[first..first+2], {names, tensors} out, and the load report {missing, unexpected,
// mismatched, loaded}.
NamedTensors state_dict_args(const Napi::CallbackInfo& info, size_t first, bool& strict);
Napi::Object state_dict_to_js(Napi::Env env, const NamedTensors& sd);
Napi::Object load_report_to_js(Napi::Env env, const LoadReport& r);

}  // namespace mtpd::binding
