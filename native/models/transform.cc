#include "models/transform.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.h"

namespace mtpd {

GeneralizedRCNNTransform::GeneralizedRCNNTransform(TransformOptions o) : options_(std::move(o)) {
  MTPD_CHECK_ARG(!options_.min_size.empty(), "min_size needs at least one value");
  for (auto s : options_.min_size) MTPD_CHECK_ARG(s > 0, "min_size must be positive, got ", s);
  MTPD_CHECK_ARG(options_.max_size > 0, "max_size must be positive, got ", options_.max_size);
  MTPD_CHECK_ARG(options_.size_divisible > 0, "size_divisible must be positive");
  for (double s : options_.image_std) MTPD_CHECK_ARG(s > 0, "image_std entries must be positive");
  MTPD_CHECK_ARG(options_.resize_style == "torchvision" || options_.resize_style == "mmdet",
                 "resize_style must be \"torchvision\" or \"mmdet\", got \"", options_.resize_style, "\"");
}

ImageSize GeneralizedRCNNTransform::resized_size(int64_t h, int64_t w, double min_size) const {
  if (options_.resize_style == "mmdet") {
    // mmcv.rescale_size((w, h), (max_size, min_size)): max_long_edge = max(scale), max_short_edge =
    // min(scale), factor = min(long / max(h, w), short / min(h, w)) (Python floats);
    // _scale_size: int(w * factor + 0.5), int(h * factor + 0.5).
    const double long_edge = std::max(static_cast<double>(options_.max_size), min_size);
    const double short_edge = std::min(static_cast<double>(options_.max_size), min_size);
    const double f = std::min(long_edge / static_cast<double>(std::max(h, w)),
                              short_edge / static_cast<double>(std::min(h, w)));
    return {static_cast<int64_t>(static_cast<double>(h) * f + 0.5),
            static_cast<int64_t>(static_cast<double>(w) * f + 0.5)};
  }
  // scale = min(min_size / min(h, w), max_size / max(h, w)) in float32: torchvision divides a
  // Python float by a float32 0-dim tensor, which torch evaluates as tensor.reciprocal() * number
  // (two float32 roundings, not one correctly rounded division: 1 pixel apart for some shapes);
  // then .item() -> double; interpolate: floor(double(size) * scale).
  const float mn = static_cast<float>(std::min(h, w)), mx = static_cast<float>(std::max(h, w));
  const float a = (1.0f / mn) * static_cast<float>(min_size);
  const float b = (1.0f / mx) * static_cast<float>(options_.max_size);
  const double scale = static_cast<double>(std::min(a, b));
  return {static_cast<int64_t>(std::floor(static_cast<double>(h) * scale)),
          static_cast<int64_t>(std::floor(static_cast<double>(w) * scale))};
}

at::Tensor GeneralizedRCNNTransform::resize_boxes(const at::Tensor& boxes, ImageSize from, ImageSize to) {
  // ratios in float32 as torchvision: tensor(new) / tensor(orig)
  const float rh = static_cast<float>(to[0]) / static_cast<float>(from[0]);
  const float rw = static_cast<float>(to[1]) / static_cast<float>(from[1]);
  at::Tensor r = at::tensor({rw, rh, rw, rh}, at::kFloat).to(boxes.device(), boxes.scalar_type());
  return boxes * r;
}

at::Tensor GeneralizedRCNNTransform::unresize_boxes(const at::Tensor& boxes, ImageSize from, ImageSize to) const {
  if (options_.resize_style != "mmdet") return resize_boxes(boxes, from, to);
  // mmdet Resize: scale_factor = np.array([w_scale, h_scale] * 2, dtype=np.float32) with
  // w_scale = new_w / w (double); the head divides the boxes by it (rescale=True).
  const float sw = static_cast<float>(static_cast<double>(from[1]) / static_cast<double>(to[1]));
  const float sh = static_cast<float>(static_cast<double>(from[0]) / static_cast<double>(to[0]));
  at::Tensor f = at::tensor({sw, sh, sw, sh}, at::kFloat).to(boxes.device(), boxes.scalar_type());
  return boxes / f;
}

ImageBatch GeneralizedRCNNTransform::operator()(const std::vector<at::Tensor>& images,
                                                const std::vector<Target>* targets, bool training) const {
  ImageBatch out;
  const size_t n = images.size();
  std::vector<at::Tensor> resized;
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor& img = images[i];
    out.original_sizes.push_back({img.size(1), img.size(2)});
    at::Tensor mean = at::tensor(std::vector<double>(options_.image_mean.begin(), options_.image_mean.end()),
                                 at::kDouble).to(img.device(), img.scalar_type());
    at::Tensor stdv = at::tensor(std::vector<double>(options_.image_std.begin(), options_.image_std.end()),
                                 at::kDouble).to(img.device(), img.scalar_type());
    // (img - mean) / std, the division in place: one image-sized temporary, not two.
    at::Tensor x = at::sub(img, mean.view({3, 1, 1}));
    x.div_(stdv.view({3, 1, 1}));
    double size;
    if (training && options_.min_size.size() > 1) {
      // torch_choice: int(torch.empty(1).uniform_(0, len(k)).item())
      const double u = at::empty({1}, at::kFloat).uniform_(0.0, static_cast<double>(options_.min_size.size()))
                           .item<float>();
      size = static_cast<double>(options_.min_size[std::min<size_t>(static_cast<size_t>(u), options_.min_size.size() - 1)]);
    } else {
      size = static_cast<double>(options_.min_size.back());
    }
    const ImageSize sz = resized_size(img.size(1), img.size(2), size);
    MTPD_CHECK_SHAPE(sz[0] > 0 && sz[1] > 0, "images[", i, "] of size ", img.size(1), "x", img.size(2),
                     " resizes to nothing");
    x = at::upsample_bilinear2d(x.unsqueeze(0), {sz[0], sz[1]}, /*align_corners=*/false).squeeze(0);
    out.image_sizes.push_back(sz);
    resized.push_back(x);
    if (targets) {
      const Target& t = (*targets)[i];
      Target r;
      r.boxes = resize_boxes(t.boxes.to(img.device(), img.scalar_type()), out.original_sizes[i], sz);
      r.labels = t.labels.to(img.device(), at::kLong);
      if (t.masks.defined()) {
        // F.interpolate(mask[:, None].float(), ...) nearest, then .byte()
        r.masks = t.masks.numel() == 0
                      ? at::zeros({0, sz[0], sz[1]}, t.masks.options().dtype(at::kByte).device(img.device()))
                      : at::upsample_nearest2d(t.masks.to(img.device()).unsqueeze(1).to(at::kFloat), {sz[0], sz[1]})
                            .squeeze(1)
                            .to(at::kByte);
      }
      out.targets.push_back(std::move(r));
    }
  }
  int64_t mh = 0, mw = 0;
  for (const auto& s : out.image_sizes) {
    mh = std::max(mh, s[0]);
    mw = std::max(mw, s[1]);
  }
  const double d = static_cast<double>(options_.size_divisible);
  mh = static_cast<int64_t>(std::ceil(static_cast<double>(mh) / d) * d);
  mw = static_cast<int64_t>(std::ceil(static_cast<double>(mw) / d) * d);
  out.tensors = at::zeros({static_cast<int64_t>(n), 3, mh, mw}, resized[0].options());
  for (size_t i = 0; i < n; ++i) {
    out.tensors[static_cast<int64_t>(i)]
        .slice(1, 0, resized[i].size(1))
        .slice(2, 0, resized[i].size(2))
        .copy_(resized[i]);
  }
  return out;
}

void GeneralizedRCNNTransform::postprocess(std::vector<Detection>& dets, const std::vector<ImageSize>& image_sizes,
                                           const std::vector<ImageSize>& original_sizes) const {
  for (size_t i = 0; i < dets.size(); ++i) {
    dets[i].boxes = unresize_boxes(dets[i].boxes, image_sizes[i], original_sizes[i]);
  }
}

TransformOptions transform_options_from_json(const Json& o, const std::string& what, TransformOptions t) {
  t.min_size = opt_ints(o, "min_size", t.min_size);
  t.max_size = opt_int(o, "max_size", t.max_size);
  auto triple = [&](const std::string& key, std::array<double, 3> fallback) {
    auto v = opt_numbers(o, key, {fallback[0], fallback[1], fallback[2]});
    MTPD_CHECK_ARG(v.size() == 3, what, ": option \"", key, "\" needs 3 numbers (one per channel), got ", v.size());
    return std::array<double, 3>{v[0], v[1], v[2]};
  };
  t.image_mean = triple("image_mean", t.image_mean);
  t.image_std = triple("image_std", t.image_std);
  t.size_divisible = opt_int(o, "size_divisible", t.size_divisible);
  return t;
}

}  // namespace mtpd
