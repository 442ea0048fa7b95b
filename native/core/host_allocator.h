// The host (CPU) allocator libtorch uses for tensor storage: large buffers are cached and reused.
//
// Why: libtorch's default CPU allocator hands every buffer to malloc and back, and glibc's adaptive
// thresholds map and unmap buffers of a few MiB and up (feature maps, their gradients, im2col
// scratch) on each allocation; every page of a freshly mapped buffer faults on first touch. A
// RetinaNet R50 train step at 512 px spent about a fifth of its CPU time in the kernel doing so.
//
// Two measures. glibc gets fixed thresholds (on glibc: buffers under 1 MiB stay in malloc's heaps
// when freed). Buffers of 1 MiB and up come from segments this allocator keeps, as PyTorch's CUDA
// caching allocator does on the GPU: a request takes the smallest free block that holds it (best
// fit), splitting off what is left when that is 1 MiB or more; a freed block merges with free
// neighbours in its segment. So memory freed at one size serves requests of any other size, and a
// process settles on about its largest live total. (The allocator before this one kept whole freed
// buffers by size class; a Mask R-CNN step, whose moments need different sizes, made it hold twice
// its live total: 2182 MiB peak RSS against 1596 MiB now, torchvision 1672.)
//
// The bound: segments (live plus free) stay within (1 + kHostCacheSlack) times the largest live
// total the process reached; a request that would go beyond it first gives segments with nothing
// in use back to the system, least recently emptied first. Segments that still hold a live block
// cannot go back, so the bound is exceeded when free space is scattered over busy segments.
// MTPD_HOST_CACHE_SLACK (read once, 0..16) sets the slack.
//
// MTPD_HOST_ALLOCATOR (read when the addon loads): "malloc" sets glibc's thresholds only, "system"
// keeps libtorch's allocator and glibc's defaults.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mtpd {

struct HostAllocatorStats {
  bool installed = false;       // false: libtorch's own CPU allocator is in use
  size_t live_bytes = 0;        // large blocks in use
  size_t cached_bytes = 0;      // free space in the segments, kept for reuse
  size_t peak_live_bytes = 0;   // the most live_bytes ever reached
  size_t bound_bytes = 0;       // (1 + slack) x peak_live_bytes: see the top of this file
  size_t segment_count = 0;     // segments held from the system
  uint64_t hits = 0;            // large requests served from free space
  uint64_t misses = 0;          // large requests that took a new segment
};

// Installs the caching allocator as libtorch's CPU allocator (once; later calls do nothing), unless
// MTPD_HOST_ALLOCATOR is "system". Returns whether it is installed.
bool install_host_allocator();

// Gives every segment with nothing in use back to the system (live blocks are untouched).
void release_cached_host_memory();

HostAllocatorStats host_allocator_stats();

// Requests under kHostCacheMinBytes go to malloc: 1 MiB, so a detector's feature maps and their
// gradients are the cache's (in glibc's per-thread arenas, whose heaps are 64 MiB each, buffers of
// a few MiB fragment them: a ResNet-18 RetinaNet train step at 512 px peaked at 1.45 GB with 32 MiB
// here and 1.12 GB with 1 MiB, against torchvision's 1.29 GB). It is also the smallest remainder
// split off a block.
constexpr size_t kHostCacheMinBytes = size_t{1} << 20;
// Blocks start at multiples of this within a segment (requests are rounded up to it): a page.
constexpr size_t kHostBlockAlign = 4096;
// New segments are multiples of this: 2 MiB.
constexpr size_t kHostSegmentRound = size_t{2} << 20;
// The bound's slack over the peak live total (see the top of this file); MTPD_HOST_CACHE_SLACK.
constexpr double kHostCacheSlack = 0.25;

}  // namespace mtpd
