// Does channels_last help a ResNet-50 on the CPU with this libtorch (1.13, oneDNN)? The ResNet-50
// body (conv1 + layer1..4, inference-mode BatchNorm folded away: convs and ReLUs, torchvision's
// shapes) at 800 x 1066 (padded to 800 x 1088), forward and forward + backward, batch 2, in the
// contiguous (NCHW) and the channels_last (NHWC) memory format, the same weights and input; CPU
// seconds, median of reps; and whether the two formats give the same output.
//
//   g++ -O2 -std=c++17 scripts/bench/channels_last.cc -o /tmp/channels_last \
//     -I/usr/include/torch/csrc/api/include -ltorch -ltorch_cpu -lc10 && /tmp/channels_last [threads] [reps] [batch] [H] [W]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace {
struct Conv {
  at::Tensor w;
  int stride, pad;
};

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

Conv conv(int64_t in, int64_t out, int64_t k, int stride) {
  // (out, in, k, k), He init
  return {(at::randn({out, in, k, k}) * std::sqrt(2.0 / (in * k * k))).set_requires_grad(true), stride, static_cast<int>(k / 2)};
}

struct Block {
  Conv c1, c2, c3;
  bool down;
  Conv proj;
};

struct Body {
  Conv stem;
  std::vector<Block> blocks;
};

Body make_body() {
  Body b{conv(3, 64, 7, 2), {}};
  const int64_t widths[] = {64, 128, 256, 512};
  const int depth[] = {3, 4, 6, 3};
  int64_t in = 64;
  for (int s = 0; s < 4; ++s)
    for (int i = 0; i < depth[s]; ++i) {
      const int stride = (i == 0 && s > 0) ? 2 : 1;
      const int64_t w = widths[s], out = 4 * w;
      Block blk{conv(in, w, 1, 1), conv(w, w, 3, stride), conv(w, out, 1, 1), i == 0, i == 0 ? conv(in, out, 1, stride) : Conv{}};
      b.blocks.push_back(blk);
      in = out;
    }
  return b;
}

at::Tensor apply(const Conv& c, const at::Tensor& x) { return at::conv2d(x, c.w, {}, c.stride, c.pad); }

// (N, 3, H, W) -> (N, 2048, H/32, W/32)
at::Tensor forward(const Body& b, at::Tensor x) {
  x = at::relu(apply(b.stem, x));
  x = at::max_pool2d(x, 3, 2, 1);
  for (const auto& blk : b.blocks) {
    auto y = at::relu(apply(blk.c1, x));
    y = at::relu(apply(blk.c2, y));
    y = apply(blk.c3, y);
    x = at::relu(y + (blk.down ? apply(blk.proj, x) : x));
  }
  return x;
}

void to_format(Body& b, at::MemoryFormat f) {
  auto cv = [&](Conv& c) {
    if (c.w.defined()) c.w = c.w.detach().contiguous(f).set_requires_grad(true);
  };
  cv(b.stem);
  for (auto& blk : b.blocks) {
    cv(blk.c1);
    cv(blk.c2);
    cv(blk.c3);
    cv(blk.proj);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  const int64_t batch = argc > 3 ? std::atoi(argv[3]) : 2;
  const int64_t h = argc > 4 ? std::atoi(argv[4]) : 800, w = argc > 5 ? std::atoi(argv[5]) : 1088;
  if (threads < 1 || reps < 1 || batch < 1 || h < 32 || w < 32) {
    std::fprintf(stderr, "usage: channels_last [threads >= 1] [reps >= 1] [batch >= 1] [H >= 32] [W >= 32]\n");
    return 2;
  }
  at::set_num_threads(threads);
  at::manual_seed(0);
  Body body = make_body();
  const at::Tensor input = at::rand({batch, 3, h, w});  // default 800 x 1066 padded to 32
  std::printf("ResNet-50 body, batch %ld at %ldx%ld, %d thread(s), median of %d (CPU s)\n", static_cast<long>(batch),
              static_cast<long>(h), static_cast<long>(w), threads, reps);
  at::Tensor reference;  // the contiguous format's output
  for (const auto& [name, fmt] : {std::pair{"contiguous (NCHW)", at::MemoryFormat::Contiguous}, std::pair{"channels_last (NHWC)", at::MemoryFormat::ChannelsLast}}) {
    to_format(body, fmt);
    const at::Tensor x = input.contiguous(fmt);
    std::vector<double> fwd, fb;
    for (int r = 0; r <= reps; ++r) {
      double t0 = cpu_seconds();
      {
        at::NoGradGuard g;
        auto y = forward(body, x);
        (void)y.sum().item<float>();
      }
      double t1 = cpu_seconds();
      auto loss = forward(body, x).sum();
      loss.backward();
      double t2 = cpu_seconds();
      if (r > 0) {  // the first is warm-up
        fwd.push_back(t1 - t0);
        fb.push_back(t2 - t1);
      }
    }
    std::printf("  %-22s forward %6.2f s   forward+backward %6.2f s", name, median(fwd), median(fb));
    at::Tensor y;
    {
      at::NoGradGuard g;
      y = forward(body, x).contiguous();
    }
    if (!reference.defined()) {
      reference = y;
      std::printf("\n");
    } else {
      const double diff = (y - reference).abs().max().item<double>(), scale = reference.abs().max().item<double>();
      std::printf("   max |difference| %.3g (output scale %.3g)\n", diff, scale);
    }
  }
  return 0;
}
