#include "distill/distiller.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/container/moduledict.h>

#include <set>

#include "core/errors.h"

namespace mtpd::distill {

namespace {

bool valid_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

uint64_t default_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64() & ((uint64_t{1} << 53) - 1);  // JS-safe
}

}  // namespace

DistillerImpl::DistillerImpl(const Json& o) {
  const std::string what = "distill.Distiller";
  MTPD_CHECK_ARG(o.is_object(), what, ": options must be an object");
  check_known_options(o, what,
                      {"student_channels", "teacher_channels", "resize", "seed", "pairs", "taps", "losses"});
  const int64_t seed_in = opt_int(o, "seed", -1);
  const uint64_t seed = seed_in >= 0 ? static_cast<uint64_t>(seed_in) : default_seed();
  const bool has_pairs = o.contains("pairs"), has_taps = o.contains("taps");
  MTPD_CHECK_ARG(has_pairs != has_taps, what, ": give either \"pairs\" or \"taps\" (with \"losses\"), not ",
                 has_pairs ? "both" : "neither");
  Json pairs = Json::array();
  if (has_taps) {
    MTPD_CHECK_ARG(o.at("taps").is_array() && !o.at("taps").empty(), what, ": \"taps\" must be a non-empty array");
    MTPD_CHECK_ARG(o.contains("losses"), what, ": \"taps\" needs \"losses\"");
    for (size_t i = 0; i < o.at("taps").size(); ++i) {
      const Json& tap = o.at("taps")[i];
      MTPD_CHECK_ARG(tap.is_string(), what, ": taps[", i, "] must be a string");
      pairs.push_back({{"student", tap}, {"teacher", tap}, {"losses", o.at("losses")}});
    }
  } else {
    MTPD_CHECK_ARG(!o.contains("losses"), what, ": \"losses\" goes inside each pair when \"pairs\" is given");
    MTPD_CHECK_ARG(o.at("pairs").is_array() && !o.at("pairs").empty(), what, ": \"pairs\" must be a non-empty array");
    pairs = o.at("pairs");
  }
  const Json no_channels = nullptr;
  auto channels_of = [&](const Json& p, const std::string& key, const std::string& where) {
    const Json& v = p.contains(key) ? p.at(key) : (o.contains(key) ? o.at(key) : no_channels);
    MTPD_CHECK_ARG(!v.is_null(), where, ": \"", key, "\" is required (on the pair or the distiller)");
    MTPD_CHECK_ARG(v.is_number_integer() && v.get<int64_t>() > 0, where, ": \"", key,
                   "\" must be a positive integer, got ", v.dump());
    return v.get<int64_t>();
  };
  const std::string resize_default = opt_string(o, "resize", "bilinear");

  auto dict = register_module("pairs", torch::nn::ModuleDict());
  Json resolved_pairs = Json::array();
  std::set<std::string> pair_names;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const Json& p = pairs[i];
    const std::string where = fmt(what, ": pairs[", i, "]");
    MTPD_CHECK_ARG(p.is_object(), where, " must be an object");
    check_known_options(p, where, {"student", "teacher", "name", "losses", "student_channels", "teacher_channels", "resize"});
    Pair pair;
    pair.student = opt_string(p, "student", "");
    pair.teacher = opt_string(p, "teacher", pair.student);
    MTPD_CHECK_ARG(!pair.student.empty(), where, ": \"student\" (the student tap) is required");
    pair.name = opt_string(p, "name", pair.student == pair.teacher ? pair.student : pair.student + "-" + pair.teacher);
    MTPD_CHECK_ARG(valid_name(pair.name), where, ": name \"", pair.name,
                   "\" may only have letters, digits, '_' and '-' (set \"name\")");
    MTPD_CHECK_ARG(pair_names.insert(pair.name).second, where, ": pair name \"", pair.name, "\" is used twice");
    const int64_t cs = channels_of(p, "student_channels", where), ct = channels_of(p, "teacher_channels", where);
    const std::string resize = opt_string(p, "resize", resize_default);
    auto holder = std::make_shared<torch::nn::Module>();
    pair.adapter = holder->register_module("adapter", Adapter(cs, ct, resize));
    MTPD_CHECK_ARG(p.contains("losses") && p.at("losses").is_array() && !p.at("losses").empty(), where,
                   ": \"losses\" must be a non-empty array");
    Json resolved_losses = Json::array();
    std::set<std::string> loss_names;
    for (size_t j = 0; j < p.at("losses").size(); ++j) {
      const Json& l = p.at("losses")[j];
      const std::string lw = fmt(where, ".losses[", j, "]");
      MTPD_CHECK_ARG(l.is_object(), lw, " must be an object");
      check_known_options(l, lw, {"type", "name", "weight", "options"});
      const std::string type = opt_string(l, "type", "");
      MTPD_CHECK_ARG(!type.empty(), lw, ": \"type\" is required (a registered loss: mse, cwd, fgd, mgd, pkd)");
      LossEntry e;
      e.name = opt_string(l, "name", type);
      MTPD_CHECK_ARG(valid_name(e.name) && e.name != "adapter", lw, ": bad loss name \"", e.name, "\"");
      MTPD_CHECK_ARG(loss_names.insert(e.name).second, lw, ": loss name \"", e.name,
                     "\" is used twice in this pair (set \"name\")");
      e.weight = opt_number(l, "weight", 1.0);
      const Json opts = l.contains("options") ? l.at("options") : Json::object();
      LossShape shape;
      shape.channels = ct;
      shape.seed = (seed + 1000003ULL * (i + 1) + 7919ULL * j) & ((uint64_t{1} << 53) - 1);
      try {
        e.loss = build_loss(type, opts, shape);
      } catch (const ArgumentError& err) {
        throw ArgumentError(fmt(lw, ": ", err.what()));
      }
      holder->register_module(e.name, e.loss);
      resolved_losses.push_back({{"type", type}, {"name", e.name}, {"weight", e.weight}, {"options", e.loss->config()}});
      pair.losses.push_back(std::move(e));
    }
    dict->update({{pair.name, holder}});
    resolved_pairs.push_back({{"name", pair.name}, {"student", pair.student}, {"teacher", pair.teacher},
                              {"student_channels", cs}, {"teacher_channels", ct}, {"resize", resize},
                              {"losses", resolved_losses}});
    pairs_.push_back(std::move(pair));
  }
  config_ = {{"seed", seed}, {"pairs", resolved_pairs}};
}

std::vector<std::string> DistillerImpl::student_taps() const {
  std::vector<std::string> out;
  for (const auto& p : pairs_) out.push_back(p.student);
  return out;
}

std::vector<std::string> DistillerImpl::teacher_taps() const {
  std::vector<std::string> out;
  for (const auto& p : pairs_) out.push_back(p.teacher);
  return out;
}

bool DistillerImpl::needs_boxes() const {
  for (const auto& p : pairs_)
    for (const auto& l : p.losses)
      if (l.loss->needs_boxes()) return true;
  return false;
}

DistillOutput DistillerImpl::forward(const FeatureMap& student, const FeatureMap& teacher, const LossContext& ctx,
                                     const std::string& prefix, const MapLayout* student_layout,
                                     const MapLayout* teacher_layout) {
  auto names = [](const FeatureMap& m) {
    std::string s;
    for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k;
    return s.empty() ? std::string("none") : s;
  };
  MTPD_CHECK_ARG((student_layout == nullptr) == (teacher_layout == nullptr),
                 "distiller: give both the student's and the teacher's layout, or neither");
  const bool aligned = student_layout != nullptr;
  // With layouts: the context every pair's losses see, boxes in the teacher's resized pixels.
  LossContext tctx;
  if (aligned) {
    const auto& ss = student_layout->image_sizes;
    const auto& ts = teacher_layout->image_sizes;
    MTPD_CHECK_SHAPE(ss.size() == ts.size(), "distiller: the student's layout has ", ss.size(),
                     " image sizes, the teacher's ", ts.size());
    MTPD_CHECK_ARG(ctx.image_sizes.empty() || ctx.image_sizes == ss,
                   "distiller: context.imageSizes must be the student's image sizes (its boxes' pixels) when layouts are "
                   "given");
    MTPD_CHECK_SHAPE(ctx.boxes.empty() || ctx.boxes.size() == ss.size(), "distiller: ", ctx.boxes.size(),
                     " box sets for ", ss.size(), " images");
    for (size_t i = 0; i < ctx.boxes.size(); ++i) tctx.boxes.push_back(align_boxes(ctx.boxes[i], ss[i], ts[i]));
    tctx.image_sizes = ts;
  }
  DistillOutput out;
  for (auto& pair : pairs_) {
    auto sit = student.find(pair.student);
    MTPD_CHECK_ARG(sit != student.end(), "distiller pair \"", pair.name, "\": the student has no tap \"", pair.student,
                   "\" (has: ", names(student), ")");
    auto tit = teacher.find(pair.teacher);
    MTPD_CHECK_ARG(tit != teacher.end(), "distiller pair \"", pair.name, "\": the teacher has no tap \"", pair.teacher,
                   "\" (has: ", names(teacher), ")");
    const at::Tensor& s = sit->second;
    const at::Tensor t = tit->second.detach();  // teachers never receive gradients
    MTPD_CHECK_SHAPE(s.dim() == 4 && s.size(1) == pair.adapter->student_channels(), "distiller pair \"", pair.name,
                     "\": student tap \"", pair.student, "\" must be (N, ", pair.adapter->student_channels(),
                     ", H, W), got ", s.sizes());
    MTPD_CHECK_SHAPE(t.dim() == 4 && t.size(1) == pair.adapter->teacher_channels(), "distiller pair \"", pair.name,
                     "\": teacher tap \"", pair.teacher, "\" must be (N, ", pair.adapter->teacher_channels(),
                     ", H, W), got ", t.sizes());
    MTPD_CHECK_SHAPE(s.size(0) == t.size(0), "distiller pair \"", pair.name, "\": student batch ", s.size(0),
                     " differs from teacher batch ", t.size(0));
    at::Tensor adapted;  // (N, C_T, H_T, W_T)
    const LossContext* lctx = &ctx;
    LossContext pctx;
    if (aligned) {
      const std::string where = fmt("distiller pair \"", pair.name, "\"");
      const Grid gs = student_layout->grid(pair.student, s, where + ", student");
      const Grid gt = teacher_layout->grid(pair.teacher, t, where + ", teacher");
      Aligned a = pair.adapter->forward(s, gs, gt);
      adapted = a.map;
      out.adapters[pair.name] = pair.adapter->kind(a.resampled);
      pctx = tctx;
      if (!a.whole) pctx.valid = a.cells;  // the batched path when every image fills its maps
      lctx = &pctx;
    } else {
      out.adapters[pair.name] = pair.adapter->kind(s.size(2), s.size(3), t.size(2), t.size(3));
      adapted = pair.adapter->forward(s, t.size(2), t.size(3));
    }
    const at::Tensor tt = t.to(adapted.scalar_type());
    for (auto& e : pair.losses) {
      for (auto& [term, v] : e.loss->forward(adapted, tt, *lctx)) {
        // A loss named other than its type keeps its own name in the key.
        std::string key = term;
        if (e.name != e.loss->type()) key = e.name + term.substr(e.loss->type().size());
        out.terms.emplace_back(prefix + pair.name + "." + key, v * e.weight);
      }
    }
  }
  at::Tensor total;
  for (const auto& [k, v] : out.terms) total = total.defined() ? total + v : v;
  out.total = total;
  return out;
}

std::shared_ptr<DistillerImpl> as_distiller(const BuiltModule& built) {
  return std::dynamic_pointer_cast<DistillerImpl>(built.module);
}

namespace {
BuiltModule make_distiller(const Json& o) { return {std::make_shared<DistillerImpl>(o), {}}; }
MTPD_REGISTER_MODULE("distill.Distiller",
                     "adapters and distillation losses per (student tap, teacher tap) pair; see distill/distiller.h",
                     make_distiller);
}  // namespace

}  // namespace mtpd::distill
