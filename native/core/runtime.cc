#include "core/runtime.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <atomic>
#include <mutex>
#include <regex>
#include <thread>

#include "core/errors.h"

namespace mtpd {

namespace {
std::string runtime_torch_version() {
  // at::show_config() is answered by the loaded libtorch_cpu, not by our headers.
  const std::string cfg = at::show_config();
  static const std::regex re("TORCH_VERSION=([0-9A-Za-z.+_-]+)");
  std::smatch m;
  if (std::regex_search(cfg, m, re)) return m[1].str();
  return "unknown";
}
}  // namespace

namespace {
std::atomic<int> g_threads{0};          // 0: not configured yet -> all cores
thread_local int t_applied_threads = -1;
}  // namespace

int configured_num_threads();

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.torch_version_built = TORCH_VERSION;
  info.torch_version_runtime = runtime_torch_version();
#if defined(_GLIBCXX_USE_CXX11_ABI)
  info.cxx11_abi = _GLIBCXX_USE_CXX11_ABI != 0;
#endif
  info.cuda_built = at::hasCUDA();
  info.cuda_available = torch::cuda::is_available();
  info.cuda_device_count = info.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  info.num_threads = configured_num_threads();
  info.num_interop_threads = at::get_num_interop_threads();
  info.parallel_info = at::get_parallel_info();
  return info;
}

int hardware_concurrency() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}


int set_num_threads(int n) {
  if (n <= 0) n = hardware_concurrency();
  g_threads.store(n);
  at::set_num_threads(n);
  t_applied_threads = n;
  return at::get_num_threads();
}

int configured_num_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : hardware_concurrency();
}

void apply_thread_settings() {
  int n = g_threads.load();
  if (n <= 0) n = hardware_concurrency();
  if (t_applied_threads != n) {
    at::set_num_threads(n);
    t_applied_threads = n;
  }
}

void set_seed(uint64_t seed) { torch::manual_seed(seed); }

std::vector<std::pair<std::string, at::Tensor>> rng_states() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto save = [&](const std::string& name, at::Generator g) {
    std::lock_guard<std::mutex> lock(g.mutex());
    out.emplace_back(name, g.get_state());
  };
  save("cpu", at::detail::getDefaultCPUGenerator());
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i)
      save(fmt("cuda:", i), at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i))));
  }
  return out;
}

void set_rng_states(const std::vector<std::pair<std::string, at::Tensor>>& states) {
  for (const auto& [name, t] : states) {
    MTPD_CHECK_ARG(t.defined() && t.scalar_type() == at::kByte, "random generator state \"", name,
                   "\" must be a uint8 tensor");
    at::Generator g;
    if (name == "cpu") {
      g = at::detail::getDefaultCPUGenerator();
    } else {
      const c10::Device dev = parse_device(name);
      MTPD_CHECK_ARG(dev.is_cuda(), "unknown random generator \"", name, "\" (cpu or cuda:N)");
      g = at::globalContext().defaultGenerator(dev);
    }
    std::lock_guard<std::mutex> lock(g.mutex());
    try {
      g.set_state(t.to(at::kCPU).contiguous());
    } catch (const c10::Error& e) {
      throw ArgumentError(fmt("random generator state \"", name, "\" does not fit this libtorch: ", e.what_without_backtrace()));
    }
  }
}

c10::Device parse_device(const std::string& spec) {
  static const std::regex re("^(cpu|cuda)(?::([0-9]+))?$");
  std::smatch m;
  MTPD_CHECK_ARG(std::regex_match(spec, m, re), "device must be \"cpu\", \"cuda\" or \"cuda:N\", got \"",
                 spec, "\"");
  if (m[1] == "cpu") {
    MTPD_CHECK_ARG(!m[2].matched, "device \"", spec, "\": cpu takes no index");
    return c10::Device(c10::kCPU);
  }
  MTPD_CHECK_ARG(at::hasCUDA(), "device \"", spec,
                 "\" asked for CUDA, but the loaded libtorch was built without CUDA. "
                 "Build mtpd against a CUDA libtorch (set LIBTORCH) to train on a GPU.");
  const int count = static_cast<int>(torch::cuda::device_count());
  MTPD_CHECK_ARG(count > 0, "device \"", spec, "\": libtorch has CUDA but sees no CUDA device");
  int index = 0;
  if (m[2].matched) {
    const std::string digits = m[2].str();
    MTPD_CHECK_ARG(digits.size() < 6, "device \"", spec, "\": index out of range");
    index = std::stoi(digits);
  }
  MTPD_CHECK_ARG(index < count, "device \"", spec, "\": only ", count, " CUDA device(s) visible");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace mtpd
