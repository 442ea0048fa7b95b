// One process of a data-parallel job over libtorch's c10d: rendezvous through a TCPStore (rank
// 0 hosts it), a ProcessGroupGloo for CPU tensors and, where libtorch has NCCL, a
// ProcessGroupNCCL for CUDA tensors. Collectives pick the group by the tensors' device. A
// heartbeat thread bumps "mtpd/hb/<rank>" in the store every heartbeat_ms, so that a rank can
// tell which peers stopped (stalled_ranks) when a collective fails or times out.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/version.h>

namespace c10d {
class Store;
class ProcessGroup;
class Backend;
class Work;
}  // namespace c10d

namespace mtpd::dist {

// ProcessGroupGloo / ProcessGroupNCCL derive from ProcessGroup in libtorch 1.x and from Backend
// in 2.x; both have the same collectives.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

struct GroupOptions {
  std::string host = "127.0.0.1";  // the rendezvous host (MASTER_ADDR)
  int port = 29500;                // MASTER_PORT
  int rank = 0;
  int world_size = 1;
  int64_t timeout_ms = 300000;     // rendezvous and every collective
  int64_t heartbeat_ms = 1000;
  bool cuda = false;               // also a ProcessGroupNCCL for CUDA tensors (needs libtorch with NCCL)
};

// Which backends this build has: "gloo" always, "nccl" when libtorch was built with it.
std::vector<std::string> available_backends();

class ProcessGroup {
 public:
  // Blocks until every rank has joined (or timeout_ms passes: ArgumentError naming the host).
  explicit ProcessGroup(const GroupOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return options_.rank; }
  int size() const { return options_.world_size; }
  const GroupOptions& options() const { return options_; }
  // "gloo" or "gloo+nccl".
  std::string backends() const;

  // Sum over ranks, in place; tensors of one device kind. The async form returns the work.
  void allreduce(std::vector<at::Tensor>& tensors);
  c10::intrusive_ptr<c10d::Work> allreduce_async(std::vector<at::Tensor>& tensors);
  // The same sum on a group of its own, for the statistics of synchronized BatchNorm
  // (models/sync_batch_norm.h): they are summed in forward and backward, while the gradient
  // buckets' allreduces run on the main group, so neither sequence depends on the other's timing.
  void allreduce_norm(at::Tensor& tensor);
  // Rank `root`'s tensors to every rank, in place (same shapes everywhere).
  void broadcast(std::vector<at::Tensor>& tensors, int root);
  // Every rank's 1-D uint8 tensor (lengths may differ), in rank order.
  std::vector<at::Tensor> allgather_bytes(const at::Tensor& bytes);
  void barrier();
  // Waits for a work item; a failure or a timeout throws with `what` and the c10d message.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what);

  // Ranks whose heartbeat did not advance over window_ms (dead, stopped or hung in the OS).
  // Throws when the store (rank 0) cannot be reached.
  std::vector<int> stalled_ranks(int64_t window_ms);
  // Every rank's heartbeat count now (a side connection; throws when rank 0 cannot be reached).
  std::vector<int64_t> heartbeats();

 private:
  Collectives& group_for(const at::Tensor& t, bool norm = false);
  std::vector<int64_t> beats(c10d::Store& store);
  GroupOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Collectives> gloo_;
  c10::intrusive_ptr<Collectives> nccl_;
  c10::intrusive_ptr<Collectives> gloo_norm_;  // allreduce_norm's groups
  c10::intrusive_ptr<Collectives> nccl_norm_;
  std::atomic<bool> stop_{false};
  std::thread heartbeat_;
  std::mutex beat_mutex_;
  std::condition_variable beat_cv_;
  std::mutex watch_mutex_;
  c10::intrusive_ptr<c10d::Store> watch_store_;  // the watchdog's connection
};

}  // namespace mtpd::dist
