// Image sizes, tap strides and map layouts (distill/align.h) across the boundary:
//   sizes   [[h, w], ...]          positive integers
//   strides {tap: stride, ...}     positive integers
//   layout  {imageSizes: sizes, strides: strides}
#pragma once

#include <napi.h>

#include <map>
#include <string>
#include <vector>

#include "distill/align.h"

namespace mtpd::binding {

// `what` names the argument in errors ("context.imageSizes"); TypeError / RangeError.
std::vector<distill::ImageSize> image_sizes_from_js(const Napi::Value& v, const std::string& what);
std::map<std::string, int64_t> strides_from_js(const Napi::Value& v, const std::string& what);
distill::MapLayout layout_from_js(const Napi::Value& v, const std::string& what);
// A positive integer (a stride, a map size).
int64_t positive_int_from_js(const Napi::Value& v, const std::string& what);

Napi::Array image_sizes_to_js(Napi::Env env, const std::vector<distill::ImageSize>& sizes);

}  // namespace mtpd::binding
