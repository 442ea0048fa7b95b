// Device check for the detectors on CUDA (not part of the addon; built by scripts/gpu-check.sh
// against any libtorch with CUDA). Prints one line per check and exits non-zero on a failure:
//  1. batched NMS on CUDA keeps exactly what it keeps on the CPU;
//  2. RetinaNet-R50 (full width) gives the same features, losses and detections on CUDA as on
//     the CPU with the same weights;
//  3. training a narrow RetinaNet on CUDA with AMP (autocast + grad scaling) lowers its loss;
//  4. timings of a R50 train step and inference at 512x512, batch 2, fp32 and AMP.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "core/state_dict.h"
#include "models/retinanet.h"
#include "ops/nms.h"
#include "train/amp.h"
#include "train/optimizer.h"

using namespace mtpd;

static int failures = 0;
static void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  std::fflush(stdout);
  if (!ok) ++failures;
}

static double rel(const at::Tensor& a, const at::Tensor& b) {
  auto x = a.detach().to(at::kCPU, at::kDouble), y = b.detach().to(at::kCPU, at::kDouble);
  if (x.sizes() != y.sizes()) return 1e30;
  if (y.numel() == 0) return 0;
  return (x - y).abs().max().item<double>() / std::max(1e-12, y.abs().max().item<double>());
}

static std::vector<Target> make_targets(int n, int size) {
  std::vector<Target> t;
  for (int i = 0; i < n; ++i) {
    t.push_back({torch::tensor({{40.f, 60.f, 200.f, 220.f}, {300.f, 100.f, 420.f, 380.f}}) * (size / 512.f),
                 torch::tensor({1, 7}, torch::kLong), {}});
  }
  return t;
}

template <typename F>
static double time_ms(F f, int reps) {
  f();
  torch::cuda::synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("FAIL no CUDA device\n");
    return 2;
  }
  torch::manual_seed(0);
  const c10::Device cuda(c10::kCUDA, 0);

  // 1. NMS
  {
    const int64_t n = 6000;
    auto xy = torch::rand({n, 2}) * 500;
    auto wh = torch::rand({n, 2}) * 80 + 2;
    auto boxes = torch::cat({xy, xy + wh}, 1);
    auto scores = torch::rand({n});
    auto labels = torch::randint(0, 20, {n}, torch::kLong);
    auto k_cpu = ops::batched_nms(boxes, scores, labels, 0.5);
    auto k_gpu = ops::batched_nms(boxes.to(cuda), scores.to(cuda), labels.to(cuda), 0.5).cpu();
    check(k_cpu.equal(k_gpu), "batched_nms CUDA == CPU (" + std::to_string(k_cpu.numel()) + " of 6000 kept)");
    // brute-force reference on the CPU
    auto order = std::get<1>(scores.sort(true, 0, true));
    std::vector<int64_t> keep;
    auto iou = ops::box_iou(boxes, boxes);
    auto lab = labels.accessor<int64_t, 1>();
    auto io = iou.accessor<float, 2>();
    auto ord = order.accessor<int64_t, 1>();
    for (int64_t a = 0; a < n; ++a) {
      int64_t i = ord[a];
      bool sup = false;
      for (int64_t j : keep)
        if (lab[j] == lab[i] && io[j][i] > 0.5f) { sup = true; break; }
      if (!sup) keep.push_back(i);
    }
    check(torch::tensor(keep, torch::kLong).equal(k_cpu), "batched_nms == brute-force greedy NMS");
  }

  // 2. RetinaNet-R50 CPU vs CUDA (TF32 off for the comparison; it is on by default for cuDNN convs)
  {
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
    RetinaNetOptions o = RetinaNetOptions::from_json(Json{{"backbone", "resnet50"}, {"num_classes", 91},
                                                          {"min_size", 320}, {"max_size", 512}, {"score_thresh", 0.02}});
    auto cpu_model = std::make_shared<RetinaNetImpl>(o);
    auto gpu_model = std::make_shared<RetinaNetImpl>(o);
    {
      torch::NoGradGuard g;
      // scores above the threshold, so detections are compared too
      for (auto& p : cpu_model->named_parameters())
        if (p.key() == "head.classification_head.cls_logits.bias") p.value().fill_(-2.0);
    }
    load_state_dict(*gpu_model, state_dict(*cpu_model), true);
    gpu_model->to(cuda);
    cpu_model->eval();
    gpu_model->eval();
    std::vector<at::Tensor> images = {torch::rand({3, 300, 400}), torch::rand({3, 352, 288})};
    auto targets = make_targets(2, 320);
    torch::NoGradGuard g;
    auto a = cpu_model->run(images, &targets, {true, true, true});
    auto b = gpu_model->run(images, &targets, {true, true, true});
    double worst = 0;
    for (auto& [k, v] : a.features) worst = std::max(worst, rel(b.features[k], v));
    check(worst < 1e-3, "R50 features CUDA vs CPU, worst rel err " + std::to_string(worst));
    for (auto& [k, v] : a.losses)
      check(rel(b.losses[k], v) < 1e-3, "R50 loss " + k + " CUDA vs CPU rel err " + std::to_string(rel(b.losses[k], v)));
    for (size_t i = 0; i < a.detections.size(); ++i) {
      auto& da = a.detections[i];
      auto& db = b.detections[i];
      const int64_t na = da.scores.numel(), nb = db.scores.numel();
      const int64_t n = std::min<int64_t>({na, nb, 50});
      double e = n ? rel(db.boxes.slice(0, 0, n), da.boxes.slice(0, 0, n)) : 0;
      check(n > 0 && std::abs(na - nb) <= std::max<int64_t>(2, na / 50) && e < 1e-3,
            "R50 detections image " + std::to_string(i) + ": CPU " + std::to_string(na) + ", CUDA " +
                std::to_string(nb) + ", top-50 boxes rel err " + std::to_string(e));
    }
  }

  // 3. AMP training on CUDA lowers the loss
  {
    at::globalContext().setAllowTF32CuDNN(true);
    RetinaNetOptions o = RetinaNetOptions::from_json(
        Json{{"backbone", "resnet18"}, {"num_classes", 2}, {"width_mult", 0.25}, {"min_size", 128}, {"max_size", 128},
             {"norm_layer", "bn"}, {"trainable_layers", 5}});
    auto model = std::make_shared<RetinaNetImpl>(o);
    model->to(cuda);
    model->train();
    train::OptimizerOptions oo;
    oo.lr = 0.01;
    oo.max_grad_norm = 10;
    oo.amp = true;
    train::Optimizer opt(train::trainable_parameters(*model), oo);
    // colored squares on noise
    std::vector<at::Tensor> images;
    std::vector<Target> targets;
    for (int i = 0; i < 8; ++i) {
      auto img = torch::rand({3, 128, 128}) * 0.3 + 0.35;
      int x = 10 + (i * 23) % 60, y = 15 + (i * 37) % 55, w = 40 + (i % 3) * 8, h = 44 - (i % 2) * 6;
      int c = i % 2;
      auto color = c ? torch::tensor({0.1f, 0.3f, 0.95f}) : torch::tensor({0.9f, 0.15f, 0.1f});
      img.slice(1, y, y + h).slice(2, x, x + w).copy_(color.view({3, 1, 1}).expand({3, h, w}));
      images.push_back(img);
      targets.push_back({torch::tensor({{float(x), float(y), float(x + w), float(y + h)}}), torch::tensor({c}, torch::kLong), {}});
    }
    double first = 0, last = 0;
    int skipped = 0;
    const int steps = 150;
    for (int s = 0; s < steps; ++s) {
      std::vector<at::Tensor> bi(images.begin() + (s % 2) * 4, images.begin() + (s % 2) * 4 + 4);
      std::vector<Target> bt(targets.begin() + (s % 2) * 4, targets.begin() + (s % 2) * 4 + 4);
      train::set_autocast(c10::DeviceType::CUDA, true);
      auto out = model->run(bi, &bt, {true, false, false});
      train::set_autocast(c10::DeviceType::CUDA, false);
      auto loss = out.losses["classification"] + out.losses["bbox_regression"];
      auto r = opt.step(loss);
      skipped += r.skipped;
      const double l = loss.item<double>();
      if (s < 10) first += l / 10;
      if (s >= steps - 10) last += l / 10;
    }
    check(std::isfinite(last) && last < 0.5 * first,
          "AMP training on CUDA: loss " + std::to_string(first) + " -> " + std::to_string(last) + " (" +
              std::to_string(skipped) + " skipped steps)");
  }

  // 4. timings
  for (const char* arch : {"resnet18", "resnet50"}) {
    RetinaNetOptions o = RetinaNetOptions::from_json(Json{{"backbone", arch}, {"num_classes", 91}, {"min_size", 512}, {"max_size", 512}});
    auto model = std::make_shared<RetinaNetImpl>(o);
    model->to(cuda);
    std::vector<at::Tensor> images = {torch::rand({3, 512, 512}), torch::rand({3, 512, 512})};
    auto targets = make_targets(2, 512);
    model->eval();
    double infer = time_ms([&] {
      torch::NoGradGuard g;
      model->run(images, nullptr, {false, false, true});
    }, 10);
    for (bool amp : {false, true}) {
      model->train();
      train::OptimizerOptions oo;
      oo.amp = amp;
      train::Optimizer opt(train::trainable_parameters(*model), oo);
      double tr = time_ms([&] {
        train::set_autocast(c10::DeviceType::CUDA, amp);
        auto out = model->run(images, &targets, {true, false, false});
        train::set_autocast(c10::DeviceType::CUDA, false);
        opt.step(out.losses["classification"] + out.losses["bbox_regression"]);
      }, 10);
      std::printf("time %s 512x512 batch 2: inference %.1f ms, train step (%s) %.1f ms\n", arch, infer,
                  amp ? "AMP" : "fp32", tr);
    }
  }
  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
