#include "ops/nms.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "core/errors.h"

namespace mtpd::ops {

at::Tensor box_iou(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  MTPD_CHECK_SHAPE(boxes1.dim() == 2 && boxes1.size(1) == 4 && boxes2.dim() == 2 && boxes2.size(1) == 4,
                   "box_iou expects (N, 4) and (M, 4) boxes, got ", boxes1.sizes(), " and ", boxes2.sizes());
  auto area = [](const at::Tensor& b) {
    return (b.select(1, 2) - b.select(1, 0)) * (b.select(1, 3) - b.select(1, 1));
  };
  at::Tensor area1 = area(boxes1), area2 = area(boxes2);
  at::Tensor lt = at::max(boxes1.slice(1, 0, 2).unsqueeze(1), boxes2.slice(1, 0, 2));  // (N, M, 2)
  at::Tensor rb = at::min(boxes1.slice(1, 2, 4).unsqueeze(1), boxes2.slice(1, 2, 4));  // (N, M, 2)
  at::Tensor wh = (rb - lt).clamp_min(0);
  at::Tensor inter = wh.select(2, 0) * wh.select(2, 1);  // (N, M)
  at::Tensor uni = area1.unsqueeze(1) + area2 - inter;
  return inter / uni;
}

at::Tensor clip_boxes_to_image(const at::Tensor& boxes, int64_t height, int64_t width) {
  at::Tensor x = boxes.slice(-1, 0, 4, 2).clamp(0, static_cast<double>(width));
  at::Tensor y = boxes.slice(-1, 1, 4, 2).clamp(0, static_cast<double>(height));
  return at::stack({x, y}, boxes.dim()).reshape(boxes.sizes());
}

namespace {

// Suppression bitmask for score-sorted boxes: row i marks the j > i with IoU(i, j) > thr and the
// same category. Built in row blocks to bound memory; the greedy pass runs on the CPU (as
// torchvision's CUDA kernel does with its bitmask).
at::Tensor sorted_nms_keep(const at::Tensor& boxes, const at::Tensor& cats, double thr) {
  const int64_t n = boxes.size(0);
  at::Tensor x1 = boxes.select(1, 0), y1 = boxes.select(1, 1), x2 = boxes.select(1, 2), y2 = boxes.select(1, 3);
  at::Tensor areas = (x2 - x1) * (y2 - y1);
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t{1} << 22) / std::max<int64_t>(n, 1)));
  std::vector<at::Tensor> rows;
  at::Tensor idx = at::arange(n, boxes.options().dtype(at::kLong));
  for (int64_t s = 0; s < n; s += block) {
    const int64_t e = std::min(n, s + block);
    // (B, 1) vs (1, n), torchvision's kernel arithmetic in the boxes' dtype.
    at::Tensor xx1 = at::max(x1.slice(0, s, e).unsqueeze(1), x1.unsqueeze(0));
    at::Tensor yy1 = at::max(y1.slice(0, s, e).unsqueeze(1), y1.unsqueeze(0));
    at::Tensor xx2 = at::min(x2.slice(0, s, e).unsqueeze(1), x2.unsqueeze(0));
    at::Tensor yy2 = at::min(y2.slice(0, s, e).unsqueeze(1), y2.unsqueeze(0));
    at::Tensor inter = (xx2 - xx1).clamp_min(0) * (yy2 - yy1).clamp_min(0);
    at::Tensor ovr = inter / (areas.slice(0, s, e).unsqueeze(1) + areas.unsqueeze(0) - inter);
    at::Tensor m = ovr > thr;
    if (cats.defined()) m = m.logical_and(cats.slice(0, s, e).unsqueeze(1) == cats.unsqueeze(0));
    m = m.logical_and(idx.unsqueeze(0) > idx.slice(0, s, e).unsqueeze(1));  // only later boxes
    rows.push_back(m);
  }
  at::Tensor mask = (rows.size() == 1 ? rows[0] : at::cat(rows, 0)).to(at::kCPU, at::kBool).contiguous();
  const bool* mk = mask.data_ptr<bool>();
  std::vector<uint8_t> removed(static_cast<size_t>(n), 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i]) continue;
    keep.push_back(i);
    const bool* row = mk + i * n;
    for (int64_t j = i + 1; j < n; ++j) removed[j] |= static_cast<uint8_t>(row[j]);
  }
  return at::tensor(keep, at::TensorOptions().dtype(at::kLong)).to(boxes.device());
}

// The same greedy pass on the CPU without the N x N mask: box i's IoU with box j is computed only
// while j is still in play (torchvision's CPU kernel), O(N x kept) instead of O(N^2) tensor work.
// Same arithmetic in T as the mask above (areas, clamped widths, inter / (a_i + a_j - inter),
// compared with the threshold cast to T, as a tensor-scalar comparison does), so the same boxes
// are kept.
template <typename T>
at::Tensor sorted_nms_keep_cpu(const at::Tensor& boxes, const at::Tensor& cats, double thr) {
  const int64_t n = boxes.size(0);
  const at::Tensor b = boxes.contiguous();  // (N, 4) xyxy, by decreasing score
  const T* p = b.data_ptr<T>();
  const at::Tensor c = cats.defined() ? cats.to(at::kLong).contiguous() : at::Tensor();
  const int64_t* cp = c.defined() ? c.data_ptr<int64_t>() : nullptr;
  std::vector<T> areas(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) areas[i] = (p[4 * i + 2] - p[4 * i]) * (p[4 * i + 3] - p[4 * i + 1]);
  const T t = static_cast<T>(thr);
  std::vector<uint8_t> removed(static_cast<size_t>(n), 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i]) continue;
    keep.push_back(i);
    const T ix1 = p[4 * i], iy1 = p[4 * i + 1], ix2 = p[4 * i + 2], iy2 = p[4 * i + 3], ia = areas[i];
    for (int64_t j = i + 1; j < n; ++j) {
      if (removed[j] || (cp && cp[j] != cp[i])) continue;
      T w = std::min(ix2, p[4 * j + 2]) - std::max(ix1, p[4 * j]);
      T h = std::min(iy2, p[4 * j + 3]) - std::max(iy1, p[4 * j + 1]);
      w = w < 0 ? T(0) : w;
      h = h < 0 ? T(0) : h;
      const T inter = w * h;
      const T ovr = inter / (ia + areas[j] - inter);
      if (ovr > t) removed[j] = 1;
    }
  }
  return at::tensor(keep, at::TensorOptions().dtype(at::kLong));
}

at::Tensor nms_impl(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& cats, double thr) {
  MTPD_CHECK_SHAPE(boxes.dim() == 2 && boxes.size(1) == 4, "nms expects boxes of shape (N, 4), got ", boxes.sizes());
  MTPD_CHECK_SHAPE(scores.dim() == 1 && scores.size(0) == boxes.size(0), "nms expects scores of shape (",
                   boxes.size(0), "), got ", scores.sizes());
  MTPD_CHECK_SHAPE(!cats.defined() || (cats.dim() == 1 && cats.size(0) == boxes.size(0)),
                   "batched_nms expects idxs of shape (", boxes.size(0), "), got ", cats.sizes());
  if (boxes.size(0) == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  at::Tensor b = boxes.detach().index_select(0, order).contiguous();
  at::Tensor c = cats.defined() ? cats.index_select(0, order) : at::Tensor();
  at::Tensor keep;
  if (b.is_cpu() && b.scalar_type() == at::kFloat) keep = sorted_nms_keep_cpu<float>(b, c, thr);
  else if (b.is_cpu() && b.scalar_type() == at::kDouble) keep = sorted_nms_keep_cpu<double>(b, c, thr);
  else keep = sorted_nms_keep(b, c, thr);
  return order.index_select(0, keep);
}

}  // namespace

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  return nms_impl(boxes, scores, at::Tensor(), iou_threshold);
}

at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold) {
  at::Tensor keep = nms_impl(boxes, scores, idxs, iou_threshold);
  // The kept set never depends on the path; the order of equal scores does. torchvision runs
  // NMS per class above 4000 box coordinates on the CPU (20000 on CUDA) and then orders the
  // kept indices (ascending) by an unstable descending sort of their scores; below that, one
  // NMS whose stable sort gives the order. Same here, so ties come out in torchvision's order.
  if (boxes.numel() > (boxes.device().is_cpu() ? 4000 : 20000)) {
    keep = std::get<0>(keep.sort());
    at::Tensor order = std::get<1>(scores.index_select(0, keep).sort(/*dim=*/0, /*descending=*/true));
    keep = keep.index_select(0, order);
  }
  return keep;
}

}  // namespace mtpd::ops
