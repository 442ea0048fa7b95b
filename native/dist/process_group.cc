#include "dist/process_group.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <exception>

#include "core/errors.h"

namespace mtpd::dist {

namespace {
std::string hb_key(int rank) { return fmt("mtpd/hb/", rank); }

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

c10::intrusive_ptr<c10d::Store> connect(const GroupOptions& o, bool server, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(o.port);
  so.isServer = server;
  so.timeout = timeout;
  // Every rank counts itself in; rank 0 (the server) waits for all of them.
  so.numWorkers = static_cast<std::size_t>(o.world_size);
  so.waitWorkers = true;
  return c10::make_intrusive<c10d::TCPStore>(o.host, so);
}

// A client of the store that takes no part in the rendezvous count.
c10::intrusive_ptr<c10d::Store> side_client(const GroupOptions& o, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(o.port);
  so.isServer = false;
  so.timeout = timeout;
  so.waitWorkers = false;
  return c10::make_intrusive<c10d::TCPStore>(o.host, so);
}

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const c10::Error& err) {
    return err.what_without_backtrace();
  } catch (const std::exception& err) {
    return err.what();
  } catch (...) {
    return "unknown error";
  }
}
}  // namespace

std::vector<std::string> available_backends() {
#ifdef USE_C10D_NCCL
  return {"gloo", "nccl"};
#else
  return {"gloo"};
#endif
}

ProcessGroup::ProcessGroup(const GroupOptions& o) : options_(o) {
  MTPD_CHECK_ARG(o.world_size >= 1, "distributed: world size must be >= 1, got ", o.world_size);
  MTPD_CHECK_ARG(o.rank >= 0 && o.rank < o.world_size, "distributed: rank must be in [0, ", o.world_size, "), got ",
                 o.rank);
  MTPD_CHECK_ARG(o.port > 0 && o.port < 65536, "distributed: port must be in 1..65535, got ", o.port);
  MTPD_CHECK_ARG(o.timeout_ms > 0, "distributed: timeout must be > 0 ms");
  MTPD_CHECK_ARG(o.heartbeat_ms > 0, "distributed: heartbeat interval must be > 0 ms");
#ifndef USE_C10D_NCCL
  MTPD_CHECK_ARG(!o.cuda, "distributed: CUDA training needs a libtorch built with NCCL (this build has Gloo only)");
#endif
  const std::chrono::milliseconds timeout(o.timeout_ms);
  try {
    store_ = connect(o, o.rank == 0, timeout);
  } catch (const std::exception& e) {
    throw ArgumentError(fmt("distributed: rank ", o.rank, " could not meet the other ", o.world_size - 1,
                            " rank(s) at ", o.host, ":", o.port, " within ", o.timeout_ms / 1000.0, " s (",
                            e.what(), ")"));
  }
  {
    auto gopts = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (is_loopback(o.host))
      gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      gopts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store_),
                                                        o.rank, o.world_size, gopts);
    gloo_norm_ = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo-norm", store_), o.rank, o.world_size, gopts);
  }
#ifdef USE_C10D_NCCL
  if (o.cuda) {
    auto nopts = c10d::ProcessGroupNCCL::Options::create();
    nopts->timeout = timeout;
    nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store_),
                                                        o.rank, o.world_size, nopts);
    nccl_norm_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl-norm", store_), o.rank, o.world_size, nopts);
  }
#endif
  heartbeat_ = std::thread([this] {
    c10::intrusive_ptr<c10d::Store> s;
    try {
      s = side_client(options_, std::chrono::milliseconds(options_.timeout_ms));
    } catch (...) {
      return;  // the store is gone: the next collective reports it
    }
    std::unique_lock<std::mutex> lock(beat_mutex_);
    while (!stop_) {
      try {
        s->add(hb_key(options_.rank), 1);
      } catch (...) {
        return;
      }
      beat_cv_.wait_for(lock, std::chrono::milliseconds(options_.heartbeat_ms), [this] { return stop_.load(); });
    }
  });
}

ProcessGroup::~ProcessGroup() {
  {
    std::lock_guard<std::mutex> lock(beat_mutex_);
    stop_ = true;
  }
  beat_cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
}

std::string ProcessGroup::backends() const { return nccl_ ? "gloo+nccl" : "gloo"; }

Collectives& ProcessGroup::group_for(const at::Tensor& t, bool norm) {
  if (t.is_cuda()) {
    MTPD_CHECK_ARG(nccl_, "distributed: a CUDA tensor, but the process group was made without CUDA (NCCL)");
    return norm ? *nccl_norm_ : *nccl_;
  }
  MTPD_CHECK_ARG(t.device().is_cpu(), "distributed: tensors must be on the CPU or CUDA, got ", t.device());
  return norm ? *gloo_norm_ : *gloo_;
}

void ProcessGroup::allreduce_norm(at::Tensor& tensor) {
  std::vector<at::Tensor> one{tensor.is_contiguous() ? tensor : tensor.contiguous()};
  wait(group_for(one[0], /*norm=*/true).allreduce(one), "SyncBatchNorm allreduce");
  if (!one[0].is_same(tensor)) tensor.copy_(one[0]);
}

void ProcessGroup::wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  try {
    work->wait(std::chrono::milliseconds(options_.timeout_ms));
  } catch (...) {
    throw std::runtime_error(fmt("distributed ", what, " failed on rank ", options_.rank, ": ",
                                 message_of(std::current_exception())));
  }
}

c10::intrusive_ptr<c10d::Work> ProcessGroup::allreduce_async(std::vector<at::Tensor>& tensors) {
  MTPD_CHECK_ARG(!tensors.empty(), "distributed allreduce: no tensors");
  // Gloo and NCCL take one tensor per device here: flatten several into one buffer.
  MTPD_CHECK_ARG(tensors.size() == 1, "distributed allreduce_async: one tensor at a time");
  return group_for(tensors[0]).allreduce(tensors);
}

void ProcessGroup::allreduce(std::vector<at::Tensor>& tensors) {
  MTPD_CHECK_ARG(!tensors.empty(), "distributed allreduce: no tensors");
  for (size_t i = 0; i < tensors.size(); ++i)
    MTPD_CHECK_ARG(tensors[i].device() == tensors[0].device() && tensors[i].scalar_type() == tensors[0].scalar_type(),
                   "distributed allreduce: tensor ", i, " differs in device or dtype from tensor 0");
  // One flat buffer: one collective, whatever the number of tensors.
  std::vector<at::Tensor> flat{at::cat([&] {
    std::vector<at::Tensor> v;
    for (auto& t : tensors) v.push_back(t.reshape({-1}));
    return v;
  }())};
  wait(group_for(flat[0]).allreduce(flat), "allreduce");
  int64_t off = 0;
  for (auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(flat[0].narrow(0, off, n).view(t.sizes()));
    off += n;
  }
}

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int root) {
  MTPD_CHECK_ARG(root >= 0 && root < size(), "distributed broadcast: root must be a rank, got ", root);
  if (tensors.empty()) return;
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    wait(group_for(t).broadcast(one, bo), "broadcast");
    if (!t.is_contiguous()) t.copy_(one[0]);
  }
}

std::vector<at::Tensor> ProcessGroup::allgather_bytes(const at::Tensor& bytes) {
  MTPD_CHECK_ARG(bytes.dim() == 1 && bytes.scalar_type() == at::kByte, "distributed allgather: expected a 1-D uint8 tensor");
  const auto opts = at::TensorOptions().dtype(at::kLong);
  std::vector<at::Tensor> len_in{at::full({1}, bytes.numel(), opts)};
  std::vector<std::vector<at::Tensor>> len_out(1);
  for (int r = 0; r < size(); ++r) len_out[0].push_back(at::empty({1}, opts));
  wait(gloo_->allgather(len_out, len_in), "allgather");
  int64_t longest = 1;
  std::vector<int64_t> lens;
  for (auto& l : len_out[0]) {
    lens.push_back(l.item<int64_t>());
    longest = std::max(longest, lens.back());
  }
  std::vector<at::Tensor> in{at::zeros({longest}, bytes.options().device(at::kCPU))};
  in[0].narrow(0, 0, bytes.numel()).copy_(bytes);
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < size(); ++r) out[0].push_back(at::empty({longest}, in[0].options()));
  wait(gloo_->allgather(out, in), "allgather");
  std::vector<at::Tensor> result;
  for (int r = 0; r < size(); ++r) result.push_back(out[0][r].narrow(0, 0, lens[r]).clone());
  return result;
}

void ProcessGroup::barrier() {
  // A one-element allreduce: Gloo's barrier, with this group's timeout and error path.
  std::vector<at::Tensor> t{at::zeros({1}, at::TensorOptions().dtype(at::kInt))};
  wait(gloo_->allreduce(t), "barrier");
}

std::vector<int64_t> ProcessGroup::beats(c10d::Store& store) {
  std::vector<int64_t> out;
  for (int r = 0; r < size(); ++r) out.push_back(store.add(hb_key(r), 0));
  return out;
}

std::vector<int64_t> ProcessGroup::heartbeats() {
  std::lock_guard<std::mutex> lock(watch_mutex_);
  try {
    if (!watch_store_) watch_store_ = side_client(options_, std::chrono::milliseconds(5000));
    return beats(*watch_store_);
  } catch (const std::exception& e) {
    watch_store_.reset();
    throw std::runtime_error(fmt("distributed: rank 0, which hosts the rendezvous store at ", options_.host, ":",
                                 options_.port, ", cannot be reached (", e.what(), ")"));
  }
}

std::vector<int> ProcessGroup::stalled_ranks(int64_t window_ms) {
  c10::intrusive_ptr<c10d::Store> s;
  std::vector<int64_t> a, b;
  try {
    s = side_client(options_, std::chrono::milliseconds(std::max<int64_t>(window_ms, 1000)));
    a = beats(*s);
    std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
    b = beats(*s);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt("distributed: rank 0, which hosts the rendezvous store at ", options_.host, ":",
                                 options_.port, ", cannot be reached (", e.what(), ")"));
  }
  std::vector<int> out;
  for (int r = 0; r < size(); ++r)
    if (r != rank() && b[r] == a[r]) out.push_back(r);
  return out;
}

}  // namespace mtpd::dist
