#include "core/host_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <unordered_map>

namespace mtpd {

namespace {

constexpr size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

class CachingHostAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    void* p = n < kHostCacheMinBytes ? c10::alloc_cpu(n) : self().take(n);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static CachingHostAllocator& self() {
    // Never destroyed: tensors freed during static destruction still find it.
    static auto* a = new CachingHostAllocator();
    return *a;
  }

  void release_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    while (!idle_.empty()) free_segment(idle_.front());
  }

  HostAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    HostAllocatorStats s;
    s.installed = true;
    s.live_bytes = live_bytes_;
    s.cached_bytes = segment_bytes_ - live_bytes_;
    s.peak_live_bytes = peak_live_bytes_;
    s.bound_bytes = bound_bytes(0);
    s.segment_count = segment_count_;
    s.hits = hits_;
    s.misses = misses_;
    return s;
  }

 private:
  struct Segment;
  // A piece of a segment, in use or free; prev/next are its neighbours in the segment, by address.
  struct Block {
    char* ptr;
    size_t size;
    bool free;
    Segment* segment;
    Block* prev;
    Block* next;
  };
  // One buffer from the system allocator, cut into blocks.
  struct Segment {
    char* base;
    size_t size;
    Block* head;
    bool idle = false;  // one free block spans it all: it can go back to the system
    std::list<Segment*>::iterator idle_at;
  };
  // Free blocks by size, then address: lower_bound finds the best fit.
  struct BySize {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };

  // (1 + slack) x the peak live total (or what it will be after a request of `extra` bytes);
  // slack from MTPD_HOST_CACHE_SLACK, read once.
  size_t bound_bytes(size_t extra) const {
    static const double slack = [] {
      const char* v = std::getenv("MTPD_HOST_CACHE_SLACK");
      if (v == nullptr || *v == '\0') return kHostCacheSlack;
      char* end = nullptr;
      const double x = std::strtod(v, &end);
      return end != nullptr && *end == '\0' && x >= 0 && x <= 16 ? x : kHostCacheSlack;
    }();
    const size_t live = std::max(peak_live_bytes_, live_bytes_ + extra);
    return static_cast<size_t>(static_cast<double>(live) * (1.0 + slack));
  }

  static void release(void* p) {
    if (p) self().give_back(p);
  }

  void* take(size_t n) {
    const size_t size = round_up(n, kHostBlockAlign);
    std::unique_lock<std::mutex> lock(mu_);
    Block probe{nullptr, size, true, nullptr, nullptr, nullptr};
    auto it = free_.lower_bound(&probe);
    Block* b = nullptr;
    if (it != free_.end()) {
      b = *it;
      free_.erase(it);
      set_busy(b->segment);
      hits_++;
    } else {
      misses_++;
      b = new_segment(size, lock);
    }
    // What is left of the block stays free if it is itself a large buffer's worth; a smaller
    // remainder goes with the block (at most kHostCacheMinBytes - kHostBlockAlign bytes).
    if (b->size - size >= kHostCacheMinBytes) {
      auto* rest = new Block{b->ptr + size, b->size - size, true, b->segment, b, b->next};
      if (b->next) b->next->prev = rest;
      b->next = rest;
      b->size = size;
      free_.insert(rest);
    }
    b->free = false;
    live_.emplace(b->ptr, b);
    live_bytes_ += b->size;
    if (live_bytes_ > peak_live_bytes_) peak_live_bytes_ = live_bytes_;
    return b->ptr;
  }

  // A new segment of `size` rounded up to kHostSegmentRound, as one free block (not in free_),
  // after giving idle segments back to the system (least recently idle first) while segments
  // would exceed the bound.
  Block* new_segment(size_t size, std::unique_lock<std::mutex>& lock) {
    const size_t seg_size = round_up(size, kHostSegmentRound);
    const size_t bound = bound_bytes(size);
    while (!idle_.empty() && segment_bytes_ + seg_size > bound) free_segment(idle_.front());
    lock.unlock();
    void* p = nullptr;
    try {
      p = c10::alloc_cpu(seg_size);
    } catch (const c10::Error&) {
      // Out of memory: every idle segment goes back and the request is tried once more (throws
      // c10::Error if it fails again).
      release_cache();
      p = c10::alloc_cpu(seg_size);
    }
    lock.lock();
    auto* seg = new Segment{static_cast<char*>(p), seg_size, nullptr};
    seg->head = new Block{seg->base, seg_size, true, seg, nullptr, nullptr};
    segment_bytes_ += seg_size;
    segment_count_++;
    return seg->head;
  }

  void give_back(void* p) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      lock.unlock();
      c10::free_cpu(p);  // a small buffer
      return;
    }
    Block* b = it->second;
    live_.erase(it);
    live_bytes_ -= b->size;
    b->free = true;
    // Merge with free neighbours, so the segment's free space serves requests of any size.
    if (b->next && b->next->free) b = merge(b, b->next);
    if (b->prev && b->prev->free) b = merge(b->prev, b);
    free_.insert(b);
    if (b->prev == nullptr && b->next == nullptr) {
      Segment* seg = b->segment;
      seg->idle = true;
      seg->idle_at = idle_.insert(idle_.end(), seg);
    }
  }

  // `right` joined to its left neighbour `left` (both free; either may be in free_), which is
  // returned, out of free_.
  Block* merge(Block* left, Block* right) {
    free_.erase(left);
    free_.erase(right);
    left->size += right->size;
    left->next = right->next;
    if (right->next) right->next->prev = left;
    delete right;
    return left;
  }

  void set_busy(Segment* seg) {
    if (!seg->idle) return;
    idle_.erase(seg->idle_at);
    seg->idle = false;
  }

  // An idle segment back to the system.
  void free_segment(Segment* seg) {
    free_.erase(seg->head);
    set_busy(seg);
    segment_bytes_ -= seg->size;
    segment_count_--;
    c10::free_cpu(seg->base);
    delete seg->head;
    delete seg;
  }

  std::mutex mu_;
  std::unordered_map<void*, Block*> live_;  // blocks in use, by address
  std::set<Block*, BySize> free_;           // free blocks of every segment
  std::list<Segment*> idle_;                // segments with nothing in use, least recently first
  size_t live_bytes_ = 0, segment_bytes_ = 0, peak_live_bytes_ = 0, segment_count_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

std::once_flag g_install_once;
bool g_installed = false;

}  // namespace

bool install_host_allocator() {
  std::call_once(g_install_once, [] {
    // MTPD_HOST_ALLOCATOR: unset (both measures), "malloc" (glibc's thresholds only), "system"
    // (neither: libtorch's allocator and glibc's defaults).
    const char* v = std::getenv("MTPD_HOST_ALLOCATOR");
    if (v && std::strcmp(v, "system") == 0) return;
    const bool malloc_only = v && std::strcmp(v, "malloc") == 0;
#if defined(__GLIBC__)
    // Fixed thresholds instead of glibc's adaptive ones: smaller buffers come from the arenas'
    // heaps and stay there when freed (no unmap/remap churn), and freed heap tops are kept up to
    // 1 GiB. Buffers at the threshold and up, which glibc then maps, are the cache's (without the
    // cache, "malloc": 32 MiB, glibc's own largest adaptive threshold).
    mallopt(M_MMAP_THRESHOLD, static_cast<int>(malloc_only ? size_t{32} << 20 : kHostCacheMinBytes));
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
#endif
    if (malloc_only) return;
    // Priority 1 outranks libtorch's default registration (0) and stays put if something else
    // registers at 0 later.
    c10::SetCPUAllocator(&CachingHostAllocator::self(), 1);
    g_installed = true;
  });
  return g_installed;
}

void release_cached_host_memory() {
  if (g_installed) CachingHostAllocator::self().release_cache();
}

HostAllocatorStats host_allocator_stats() {
  if (!g_installed) return {};
  return CachingHostAllocator::self().stats();
}

}  // namespace mtpd
