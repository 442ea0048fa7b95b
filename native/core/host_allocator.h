// The host (CPU) allocator libtorch uses for tensor storage: large buffers are cached and reused.
//
// Why: libtorch's default CPU allocator hands every buffer to malloc and back, and glibc's adaptive
// thresholds map and unmap buffers of a few MiB and up (feature maps, their gradients, im2col
// scratch) on each allocation; every page of a freshly mapped buffer faults on first touch. A
// RetinaNet R50 train step at 512 px spent about a fifth of its CPU time in the kernel doing so.
// Two measures: glibc gets fixed thresholds (on glibc: buffers under 1 MiB stay in malloc's heaps
// when freed), and buffers of 1 MiB and up are cached here: freed ones (sizes rounded to eighths of
// a power of two) go back to the next request of the same size class or one a little larger, as
// PyTorch's CUDA caching allocator does on the GPU. The cache is bounded: live plus cached never
// exceeds (1 + kHostCacheSlack) times the largest live total the process reached, the least
// recently freed buffers go first.
//
// The slack: with a bound of exactly the peak live total (slack 0), every buffer is in use at the
// peak, so a step whose other moments need other size classes must evict and map anew on every
// step: a ResNet-18 RetinaNet inference at 512 px missed 47 of its 233 large requests, each a fresh
// mapping that faults in page by page, and ran at 1.18 s against 0.62 s with slack 1 (no misses).
// Slack 1 lets the cache settle on the buffers a step cycles through; its train step peaked at
// 1.29 GB, torchvision's 1.30 GB (slack 0: 1.13 GB, but 1.2x slower train steps on that machine).
// MTPD_HOST_CACHE_SLACK (read once, 0..16) sets it: 0 for the least memory.
//
// MTPD_HOST_ALLOCATOR (read when the addon loads): "malloc" sets glibc's thresholds only, "system"
// keeps libtorch's allocator and glibc's defaults. On Linux, starting the process with
// MALLOC_ARENA_MAX=1 (one malloc heap for every thread) lowers peak memory a little further: 1.4%
// in a ResNet-18 RetinaNet train step at 512 px (it was a tenth with the 32 MiB cache).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mtpd {

struct HostAllocatorStats {
  bool installed = false;       // false: libtorch's own CPU allocator is in use
  size_t live_bytes = 0;        // large buffers in use (rounded sizes)
  size_t cached_bytes = 0;      // large buffers freed and kept for reuse
  size_t peak_live_bytes = 0;   // the most live_bytes ever reached
  size_t bound_bytes = 0;       // live + cached never exceeds this: (1 + slack) x peak_live_bytes
  uint64_t hits = 0;            // large requests served from the cache
  uint64_t misses = 0;          // large requests that allocated
};

// Installs the caching allocator as libtorch's CPU allocator (once; later calls do nothing), unless
// MTPD_HOST_ALLOCATOR is "system". Returns whether it is installed.
bool install_host_allocator();

// Frees every cached buffer (live ones are untouched).
void release_cached_host_memory();

HostAllocatorStats host_allocator_stats();

// The size class of a large request: n rounded up to a multiple of 1/8 of the power of two at or
// below it (at most 12.5% more). Requests under kHostCacheMinBytes are not cached: 1 MiB, so a
// detector's feature maps and their gradients are (in glibc's per-thread arenas, whose heaps are
// 64 MiB each, buffers of a few MiB fragment them: a ResNet-18 RetinaNet train step at 512 px
// peaked at 1.45 GB with 32 MiB here and 1.12 GB with 1 MiB, against torchvision's 1.29 GB).
constexpr size_t kHostCacheMinBytes = size_t{1} << 20;
// A request with no cached buffer of its class takes one of up to this many classes above it.
constexpr int kHostCacheFitClasses = 4;
// The cache's bound over the peak live total (see the top of this file); MTPD_HOST_CACHE_SLACK.
constexpr double kHostCacheSlack = 1.0;
size_t host_size_class(size_t n);

}  // namespace mtpd
