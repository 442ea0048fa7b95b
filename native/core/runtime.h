// Process-wide runtime facts and settings: versions, devices, threads.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>
#include <utility>
#include <vector>

namespace mtpd {

struct RuntimeInfo {
  std::string torch_version_built;    // TORCH_VERSION the addon was compiled against
  std::string torch_version_runtime;  // TORCH_VERSION reported by the loaded libtorch
  bool cxx11_abi = false;
  bool cuda_built = false;            // the loaded libtorch has CUDA support compiled in
  bool cuda_available = false;        // ... and a usable device
  int cuda_device_count = 0;
  int num_threads = 0;
  int num_interop_threads = 0;
  std::string parallel_info;
};

RuntimeInfo runtime_info();

// Intra-op thread count (libtorch defaults to 1 on Debian's build). n <= 0 means all cores.
int set_num_threads(int n);
int hardware_concurrency();
int configured_num_threads();
// The intra-op thread count is per OS thread under OpenMP: worker threads call this before
// running model code so they use the configured count.
void apply_thread_settings();

// Seeds libtorch's default generators (CPU and, where present, CUDA): weight initialization and
// any random op that uses the default generator become reproducible.
void set_seed(uint64_t seed);

// States of libtorch's default generators, for checkpoints: "cpu", and "cuda:N" for each CUDA
// device libtorch can see (uint8 tensors). set_rng_states restores any subset of them.
std::vector<std::pair<std::string, at::Tensor>> rng_states();
void set_rng_states(const std::vector<std::pair<std::string, at::Tensor>>& states);

// "cpu", "cuda", "cuda:N". Throws ArgumentError for malformed strings and for CUDA
// on a libtorch without CUDA or without such a device.
c10::Device parse_device(const std::string& spec);

}  // namespace mtpd
