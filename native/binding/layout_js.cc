#include "binding/layout_js.h"

#include <cmath>

#include "core/errors.h"

namespace mtpd::binding {

int64_t positive_int_from_js(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to be a number"));
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!(x > 0) || std::floor(x) != x || x > 9007199254740991.0)
    throw Napi::RangeError::New(v.Env(), fmt(what, " must be a positive integer, got ", x));
  return static_cast<int64_t>(x);
}

std::vector<distill::ImageSize> image_sizes_from_js(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to be [h, w][]"));
  Napi::Array a = v.As<Napi::Array>();
  std::vector<distill::ImageSize> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    const std::string ew = fmt(what, "[", i, "]");
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2)
      throw Napi::TypeError::New(v.Env(), fmt("expected ", ew, " to be [h, w]"));
    out.push_back({positive_int_from_js(e.As<Napi::Array>().Get(0u), ew + "[0]"),
                   positive_int_from_js(e.As<Napi::Array>().Get(1u), ew + "[1]")});
  }
  return out;
}

std::map<std::string, int64_t> strides_from_js(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject() || v.IsArray()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to be {tap: stride}"));
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  std::map<std::string, int64_t> out;
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    out[k] = positive_int_from_js(o.Get(k), fmt(what, ".", k));
  }
  return out;
}

distill::MapLayout layout_from_js(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject() || v.IsArray())
    throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to be {imageSizes, strides}"));
  Napi::Object o = v.As<Napi::Object>();
  distill::MapLayout l;
  l.image_sizes = image_sizes_from_js(o.Get("imageSizes"), what + ".imageSizes");
  l.strides = strides_from_js(o.Get("strides"), what + ".strides");
  return l;
}

Napi::Array image_sizes_to_js(Napi::Env env, const std::vector<distill::ImageSize>& sizes) {
  Napi::Array a = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    Napi::Array hw = Napi::Array::New(env, 2);
    hw.Set(0u, Napi::Number::New(env, static_cast<double>(sizes[i][0])));
    hw.Set(1u, Napi::Number::New(env, static_cast<double>(sizes[i][1])));
    a.Set(static_cast<uint32_t>(i), hw);
  }
  return a;
}

}  // namespace mtpd::binding
