#include "core/registry.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "core/errors.h"

namespace mtpd {

namespace {
NamedRegistry<ModuleFactory>& modules() {
  static NamedRegistry<ModuleFactory> r("module");
  return r;
}
}  // namespace

void throw_unknown_name(const std::string& what, const std::string& name, const std::string& known) {
  throw ArgumentError(fmt("unknown ", what, " \"", name, "\"; known: ", known));
}

void register_module_factory(const std::string& name, ModuleFactory factory, std::string doc) {
  modules().add(name, std::move(factory), std::move(doc));
}

BuiltModule build_module(const std::string& name, const Json& options) {
  ModuleFactory f = modules().get(name);
  MTPD_CHECK_ARG(options.is_object(), "options for \"", name, "\" must be an object");
  return f(options);
}

std::vector<std::pair<std::string, std::string>> registered_modules() { return modules().list(); }

double opt_number(const Json& o, const std::string& key, double fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  MTPD_CHECK_ARG(it->is_number(), "option \"", key, "\" must be a number, got ", it->dump());
  return it->get<double>();
}

int64_t opt_int(const Json& o, const std::string& key, int64_t fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  if (it->is_number_integer()) {
    // JSON from JS never holds exact integers beyond 2^53; a larger one (2^63 arrives as the
    // unsigned 9223372036854776000, which get<int64_t>() wraps to a negative) is refused like
    // a float of that size.
    const bool in_range = it->is_number_unsigned() ? it->get<uint64_t>() <= 9007199254740991ULL
                                                   : (it->get<int64_t>() >= -9007199254740991LL &&
                                                      it->get<int64_t>() <= 9007199254740991LL);
    MTPD_CHECK_ARG(in_range, "option \"", key, "\" must be an integer of magnitude at most 2^53, got ", it->dump());
    return it->get<int64_t>();
  }
  MTPD_CHECK_ARG(it->is_number_float(), "option \"", key, "\" must be an integer, got ", it->dump());
  const double v = it->get<double>();
  MTPD_CHECK_ARG(std::floor(v) == v, "option \"", key, "\" must be an integer, got ", it->dump());
  MTPD_CHECK_ARG(std::abs(v) <= 9007199254740991.0, "option \"", key,
                 "\" must be an integer of magnitude at most 2^53, got ", it->dump());
  return static_cast<int64_t>(v);
}

int64_t req_int(const Json& o, const std::string& key) {
  MTPD_CHECK_ARG(o.contains(key) && !o.at(key).is_null(), "option \"", key, "\" is required");
  return opt_int(o, key, 0);
}

bool opt_bool(const Json& o, const std::string& key, bool fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  MTPD_CHECK_ARG(it->is_boolean(), "option \"", key, "\" must be true or false, got ", it->dump());
  return it->get<bool>();
}

std::string opt_string(const Json& o, const std::string& key, const std::string& fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  MTPD_CHECK_ARG(it->is_string(), "option \"", key, "\" must be a string, got ", it->dump());
  return it->get<std::string>();
}

std::vector<double> opt_numbers(const Json& o, const std::string& key, std::vector<double> fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  MTPD_CHECK_ARG(it->is_array(), "option \"", key, "\" must be an array of numbers, got ", it->dump());
  std::vector<double> out;
  for (size_t i = 0; i < it->size(); ++i) {
    MTPD_CHECK_ARG((*it)[i].is_number(), "option \"", key, "[", i, "]\" must be a number");
    out.push_back((*it)[i].get<double>());
  }
  return out;
}

std::vector<int64_t> opt_ints(const Json& o, const std::string& key, std::vector<int64_t> fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  if (it->is_number()) return {opt_int(o, key, 0)};
  MTPD_CHECK_ARG(it->is_array(), "option \"", key, "\" must be an integer or an array of integers, got ", it->dump());
  std::vector<int64_t> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    MTPD_CHECK_ARG(v.is_number_integer() || (v.is_number() && std::floor(v.get<double>()) == v.get<double>()),
                   "option \"", key, "[", i, "]\" must be an integer, got ", v.dump());
    out.push_back(v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>()));
  }
  return out;
}

void check_known_options(const Json& o, const std::string& what, const std::vector<std::string>& known) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ArgumentError(fmt(what, ": unknown option \"", it.key(), "\" (known: ", list, ")"));
    }
  }
}

}  // namespace mtpd
