// Tensors cross the boundary as descriptors {dtype, shape, data: TypedArray}.
#pragma once

#include <ATen/core/Tensor.h>
#include <napi.h>

#include <string>
#include <vector>

namespace mtpd::binding {

// Copies a JS descriptor into a new CPU tensor. `what` names the argument in errors
// ("images[2]"). Throws Napi::TypeError / Napi::RangeError.
at::Tensor tensor_from_js(const Napi::Value& value, const std::string& what);
std::vector<at::Tensor> tensors_from_js(const Napi::Value& value, const std::string& what);

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

}  // namespace mtpd::binding
