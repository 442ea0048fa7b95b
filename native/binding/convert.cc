#include "binding/convert.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "binding/worker.h"
#include "core/errors.h"

namespace mtpd::binding {

namespace {

struct DtypeSpec {
  const char* name;
  at::ScalarType type;
  napi_typedarray_type array;
  const char* array_name;
};

const DtypeSpec kDtypes[] = {
    {"float32", at::kFloat, napi_float32_array, "Float32Array"},
    {"float64", at::kDouble, napi_float64_array, "Float64Array"},
    {"float16", at::kHalf, napi_uint16_array, "Uint16Array"},
    {"int32", at::kInt, napi_int32_array, "Int32Array"},
    {"int64", at::kLong, napi_bigint64_array, "BigInt64Array"},
    {"uint8", at::kByte, napi_uint8_array, "Uint8Array"},
    {"bool", at::kBool, napi_uint8_array, "Uint8Array"},
};

const DtypeSpec* spec_by_name(const std::string& n) {
  for (const auto& s : kDtypes)
    if (n == s.name) return &s;
  return nullptr;
}

const DtypeSpec* spec_by_type(at::ScalarType t) {
  for (const auto& s : kDtypes)
    if (s.type == t) return &s;
  return nullptr;
}

}  // namespace

at::Tensor tensor_from_js(const Napi::Value& value, const std::string& what) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || value.IsArray() || value.IsTypedArray())
    throw Napi::TypeError::New(env, fmt("expected ", what, " to be a tensor {dtype, shape, data}"));
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value dt = obj.Get("dtype");
  if (!dt.IsString()) throw Napi::TypeError::New(env, fmt("expected ", what, ".dtype to be a string"));
  const std::string dtype = dt.As<Napi::String>().Utf8Value();
  const DtypeSpec* spec = spec_by_name(dtype);
  if (!spec) {
    throw Napi::TypeError::New(
        env, fmt(what, ".dtype \"", dtype, "\" is not one of float32, float64, float16, int32, int64, uint8, bool"));
  }
  Napi::Value sh = obj.Get("shape");
  if (!sh.IsArray()) throw Napi::TypeError::New(env, fmt("expected ", what, ".shape to be an array of integers"));
  Napi::Array shape_arr = sh.As<Napi::Array>();
  if (shape_arr.Length() > 16) throw Napi::RangeError::New(env, fmt(what, ".shape has more than 16 dimensions"));
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  for (uint32_t i = 0; i < shape_arr.Length(); ++i) {
    Napi::Value d = shape_arr.Get(i);
    if (!d.IsNumber()) throw Napi::TypeError::New(env, fmt("expected ", what, ".shape[", i, "] to be an integer"));
    const double v = d.As<Napi::Number>().DoubleValue();
    if (!(v >= 0) || std::floor(v) != v || v > 9007199254740991.0)
      throw Napi::RangeError::New(env, fmt(what, ".shape[", i, "] must be a non-negative integer, got ", v));
    const uint64_t u = static_cast<uint64_t>(v);
    if (u != 0 && numel > std::numeric_limits<uint64_t>::max() / u)
      throw Napi::RangeError::New(env, fmt(what, ".shape is too large"));
    numel *= u;
    shape.push_back(static_cast<int64_t>(u));
  }
  Napi::Value data = obj.Get("data");
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != spec->array) {
    throw Napi::TypeError::New(env, fmt("expected ", what, ".data to be a ", spec->array_name, " for dtype ", dtype));
  }
  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  if (static_cast<uint64_t>(ta.ElementLength()) != numel) {
    throw Napi::RangeError::New(env, fmt(what, ".data has ", ta.ElementLength(), " elements but shape ",
                                         c10::IntArrayRef(shape), " needs ", numel));
  }
  // The data pointer straight from the typed array: ta.ArrayBuffer().Data() fails ("Invalid
  // argument") when the array views a SharedArrayBuffer.
  void* raw = nullptr;
  size_t length = 0;
  napi_status st = napi_get_typedarray_info(env, ta, nullptr, &length, &raw, nullptr, nullptr);
  if (st != napi_ok) throw Napi::TypeError::New(env, fmt("cannot read ", what, ".data"));
  const uint8_t* src = static_cast<const uint8_t*>(raw);
  const size_t bytes = ta.ByteLength();
  return guarded(env, [&] {
    if (spec->type == at::kBool) {
      at::Tensor raw = at::empty(shape, at::kByte);
      if (bytes) std::memcpy(raw.data_ptr(), src, bytes);
      return raw.ne(0);
    }
    at::Tensor t = at::empty(shape, spec->type);
    if (bytes) std::memcpy(t.data_ptr(), src, bytes);
    return t;
  });
}

std::vector<at::Tensor> tensors_from_js(const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), fmt("expected ", what, " to be an array of tensors"));
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(tensor_from_js(arr.Get(i), fmt(what, "[", i, "]")));
  return out;
}

std::map<std::string, at::Tensor> tensor_map_from_js(const Napi::Value& value, const std::string& what) {
  if (!value.IsObject() || value.IsArray()) throw Napi::TypeError::New(value.Env(), fmt("expected ", what, " to be {tap: tensor}"));
  Napi::Object o = value.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  std::map<std::string, at::Tensor> out;
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    out[k] = tensor_from_js(o.Get(k), fmt(what, ".", k));
  }
  return out;
}

at::Tensor host(const at::Tensor& t) {
  at::Tensor h = t.detach();
  if (!h.device().is_cpu()) h = h.to(at::kCPU);
  return h.contiguous();
}

Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& t0) {
  at::Tensor t = t0;
  const DtypeSpec* spec = spec_by_type(t.scalar_type());
  if (!spec) {
    // Types without a JS twin (bfloat16, int16, ...) travel as float32.
    t = t.to(at::kFloat);
    spec = spec_by_type(at::kFloat);
  }
  if (!t.device().is_cpu() || !t.is_contiguous()) t = t.to(at::kCPU).contiguous();
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  const size_t n = static_cast<size_t>(t.numel());
  Napi::Value data;
  switch (spec->array) {
    case napi_float32_array: data = Napi::Float32Array::New(env, n, buf, 0); break;
    case napi_float64_array: data = Napi::Float64Array::New(env, n, buf, 0); break;
    case napi_uint16_array: data = Napi::Uint16Array::New(env, n, buf, 0); break;
    case napi_int32_array: data = Napi::Int32Array::New(env, n, buf, 0); break;
    case napi_bigint64_array: data = Napi::BigInt64Array::New(env, n, buf, 0); break;
    default: data = Napi::Uint8Array::New(env, n, buf, 0); break;
  }
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  Napi::Object out = Napi::Object::New(env);
  out.Set("dtype", spec->name);
  out.Set("shape", shape);
  out.Set("data", data);
  return out;
}

Napi::Array tensors_to_js(Napi::Env env, const std::vector<at::Tensor>& ts) {
  Napi::Array arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); ++i) arr.Set(static_cast<uint32_t>(i), tensor_to_js(env, ts[i]));
  return arr;
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const std::string& what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), fmt("expected ", what, " to be a string"));
  return info[i].As<Napi::String>().Utf8Value();
}

std::string optional_string_arg(const Napi::CallbackInfo& info, size_t i, const std::string& what,
                                const std::string& fallback) {
  if (info.Length() <= i || info[i].IsUndefined()) return fallback;
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), fmt("expected ", what, " to be a string"));
  return info[i].As<Napi::String>().Utf8Value();
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const std::string& what) {
  if (info.Length() <= i || !info[i].IsBoolean())
    throw Napi::TypeError::New(info.Env(), fmt("expected ", what, " to be a boolean"));
  return info[i].As<Napi::Boolean>().Value();
}

std::vector<std::string> strings_arg(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, " to be an array of strings"));
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw Napi::TypeError::New(v.Env(), fmt("expected ", what, "[", i, "] to be a string"));
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

NamedTensors state_dict_args(const Napi::CallbackInfo& info, size_t first, bool& strict) {
  Napi::Env env = info.Env();
  if (info.Length() < first + 3) throw Napi::TypeError::New(env, "loadStateDict(names, tensors, strict) takes 3 arguments");
  auto names = strings_arg(info[first], "names");
  auto tensors = tensors_from_js(info[first + 1], "tensors");
  strict = bool_arg(info, first + 2, "strict");
  if (names.size() != tensors.size())
    throw Napi::RangeError::New(env, fmt("names has ", names.size(), " entries but tensors has ", tensors.size()));
  NamedTensors sd;
  for (size_t i = 0; i < names.size(); ++i) sd.emplace_back(std::move(names[i]), std::move(tensors[i]));
  return sd;
}

Napi::Object state_dict_to_js(Napi::Env env, const NamedTensors& sd) {
  Napi::Array names = Napi::Array::New(env, sd.size());
  Napi::Array tensors = Napi::Array::New(env, sd.size());
  for (size_t i = 0; i < sd.size(); ++i) {
    names.Set(static_cast<uint32_t>(i), sd[i].first);
    tensors.Set(static_cast<uint32_t>(i), tensor_to_js(env, sd[i].second));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("names", names);
  o.Set("tensors", tensors);
  return o;
}

Napi::Object load_report_to_js(Napi::Env env, const LoadReport& r) {
  auto strings = [&](const std::vector<std::string>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
    return a;
  };
  auto ints = [&](const std::vector<int64_t>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(v[i])));
    return a;
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("missing", strings(r.missing));
  o.Set("unexpected", strings(r.unexpected));
  Napi::Array mm = Napi::Array::New(env, r.mismatched.size());
  for (size_t i = 0; i < r.mismatched.size(); ++i) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("key", r.mismatched[i].key);
    m.Set("expected", ints(r.mismatched[i].expected));
    m.Set("got", ints(r.mismatched[i].got));
    mm.Set(static_cast<uint32_t>(i), m);
  }
  o.Set("mismatched", mm);
  o.Set("loaded", Napi::Number::New(env, static_cast<double>(r.loaded)));
  return o;
}

}  // namespace mtpd::binding
