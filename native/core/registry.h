// Name -> factory registry for everything the TS side can build by name (modules now;
// detectors, adapters and distillation losses register here too). Options arrive as JSON
// objects whose keys carry torchvision's keyword names.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mtpd {

using Json = nlohmann::json;

struct BuiltModule {
  std::shared_ptr<torch::nn::Module> module;
  // Optional plain tensor-in/tensor-out forward (layers, adapters). Detectors expose their
  // own interface instead (see models/detector.h).
  std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)> forward;
};

using ModuleFactory = std::function<BuiltModule(const Json& options)>;

// A thread-safe name -> (factory, doc) table; the module registry and the distillation-loss
// registry are both one of these. `what` names the kind in errors ("unknown module \"x\"").
template <typename Factory>
class NamedRegistry {
 public:
  explicit NamedRegistry(std::string what) : what_(std::move(what)) {}

  void add(const std::string& name, Factory factory, std::string doc) {
    std::lock_guard<std::mutex> lock(mutex_);
    table_[name] = Entry{std::move(factory), std::move(doc)};
  }

  // The factory registered as `name`; ArgumentError listing the known names otherwise.
  Factory get(const std::string& name) const;

  std::vector<std::pair<std::string, std::string>> list() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, v] : table_) out.emplace_back(k, v.doc);
    return out;
  }

 private:
  struct Entry {
    Factory factory;
    std::string doc;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry> table_;
  std::string what_;
};

void register_module_factory(const std::string& name, ModuleFactory factory, std::string doc);
BuiltModule build_module(const std::string& name, const Json& options);
std::vector<std::pair<std::string, std::string>> registered_modules();  // (name, doc)

// Throws ArgumentError "unknown <what> \"<name>\"; known: <known>".
[[noreturn]] void throw_unknown_name(const std::string& what, const std::string& name, const std::string& known);

// Typed option readers: the error names the option and what was expected.
double opt_number(const Json& o, const std::string& key, double fallback);
int64_t opt_int(const Json& o, const std::string& key, int64_t fallback);
bool opt_bool(const Json& o, const std::string& key, bool fallback);
std::string opt_string(const Json& o, const std::string& key, const std::string& fallback);
std::vector<double> opt_numbers(const Json& o, const std::string& key, std::vector<double> fallback);
// An integer or an array of integers (a single integer reads as a one-element list).
std::vector<int64_t> opt_ints(const Json& o, const std::string& key, std::vector<int64_t> fallback);
int64_t req_int(const Json& o, const std::string& key);
// Throws ArgumentError naming the first key of `o` that is not in `known`.
void check_known_options(const Json& o, const std::string& what, const std::vector<std::string>& known);

template <typename Factory>
Factory NamedRegistry<Factory>::get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = table_.find(name);
  if (it == table_.end()) {
    std::string known;
    for (const auto& [k, v] : table_) known += (known.empty() ? "" : ", ") + k;
    throw_unknown_name(what_, name, known);
  }
  return it->second.factory;
}

struct ModuleRegistrar {
  ModuleRegistrar(const std::string& name, ModuleFactory f, std::string doc) {
    register_module_factory(name, std::move(f), std::move(doc));
  }
};

}  // namespace mtpd

#define MTPD_CONCAT_INNER(a, b) a##b
#define MTPD_CONCAT(a, b) MTPD_CONCAT_INNER(a, b)
#define MTPD_REGISTER_MODULE(name, doc, factory) \
  static ::mtpd::ModuleRegistrar MTPD_CONCAT(mtpd_registrar_, __COUNTER__)(name, factory, doc)
