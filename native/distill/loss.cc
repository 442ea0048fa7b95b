#include "distill/loss.h"

#include <ATen/core/TensorBody.h>

#include <map>
#include <mutex>

#include "core/errors.h"

namespace mtpd::distill {

namespace {
struct Entry {
  LossFactory factory;
  std::string doc;
};
std::map<std::string, Entry>& table() {
  static std::map<std::string, Entry> t;
  return t;
}
std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

void register_loss(const std::string& type, LossFactory factory, std::string doc) {
  std::lock_guard<std::mutex> lock(table_mutex());
  table()[type] = Entry{std::move(factory), std::move(doc)};
}

std::shared_ptr<LossImpl> build_loss(const std::string& type, const Json& options, const LossShape& shape) {
  LossFactory f;
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(type);
    if (it == table().end()) {
      std::string known;
      for (const auto& [k, v] : table()) known += (known.empty() ? "" : ", ") + k;
      throw ArgumentError(fmt("unknown distillation loss \"", type, "\"; known: ", known));
    }
    f = it->second.factory;
  }
  MTPD_CHECK_ARG(options.is_object(), "options of distillation loss \"", type, "\" must be an object");
  return f(options, shape);
}

std::vector<std::pair<std::string, std::string>> registered_losses() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : table()) out.emplace_back(k, v.doc);
  return out;
}

void check_pair_shapes(const at::Tensor& s, const at::Tensor& t, const std::string& what) {
  MTPD_CHECK_SHAPE(s.dim() == 4, what, ": student map must be (N, C, H, W), got ", s.sizes());
  MTPD_CHECK_SHAPE(t.dim() == 4, what, ": teacher map must be (N, C, H, W), got ", t.sizes());
  MTPD_CHECK_SHAPE(s.sizes() == t.sizes(), what, ": student map ", s.sizes(), " and teacher map ", t.sizes(),
                   " differ after the adapter");
  MTPD_CHECK_ARG(s.is_floating_point() && t.is_floating_point(), what, ": maps must be floating point");
  MTPD_CHECK_SHAPE(s.numel() > 0, what, ": empty feature map ", s.sizes());
}

}  // namespace mtpd::distill
