#!/usr/bin/python3
"""Golden numbers for mtpd's RoIAlign and MultiScaleRoIAlign, from torchvision 0.14's
torchvision.ops.roi_align and torchvision.ops.MultiScaleRoIAlign (Debian's python3-torchvision).

Writes test/fixtures/ops/roi_align.safetensors: per case, the inputs (maps, rois, image sizes,
the output gradient), torchvision's output and the gradients of the maps; the options of every
case are in __metadata__.cases (JSON). Boxes cover the awkward spots: the map border, partly and
wholly outside the map, boxes under one cell, degenerate boxes; fixed and adaptive sampling grids. Checked by test/ops/roi_align.test.ts.

  /usr/bin/python3 scripts/golden/torchvision_roi_align.py --out test/fixtures/ops
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import torch
import torchvision
from torchvision.ops import roi_align, MultiScaleRoIAlign

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_retinanet import save_safetensors  # noqa: E402

assert torchvision.__version__.startswith("0.14"), f"expected torchvision 0.14, got {torchvision.__version__}"


def random_rois(g, n_img, k, h, w, scale):
    """k boxes in input pixels (map size / scale), some of them awkward."""
    H, W = h / scale, w / scale
    x1 = torch.rand(k, generator=g) * W * 1.1 - 0.1 * W
    y1 = torch.rand(k, generator=g) * H * 1.1 - 0.1 * H
    bw = torch.rand(k, generator=g) * W * 0.6
    bh = torch.rand(k, generator=g) * H * 0.6
    b = torch.stack([x1, y1, x1 + bw, y1 + bh], 1)
    extra = torch.tensor([
        [0.0, 0.0, W, H],                      # the whole map
        [W - 2.0, H - 2.0, W + 3.0, H + 3.0],  # over the bottom-right border
        [-5.0, -5.0, -1.5, -2.0],              # wholly outside
        [3.2, 4.1, 3.4, 4.3],                  # under one cell
        [2.0, 2.0, 2.0, 6.0],                  # zero width
        [W * 0.5, H * 0.25, W * 0.5 + 1.0 / scale, H * 0.25 + 3.0 / scale],
    ])
    b = torch.cat([b, extra], 0)
    idx = torch.randint(0, n_img, (b.shape[0], 1), generator=g).to(b.dtype)
    return torch.cat([idx, b], 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    io = OrderedDict()
    cases = []
    specs = [
        dict(name="s7_scale1_legacy", n=2, c=3, h=11, w=13, scale=1.0, out=7, ratio=2, aligned=False, k=10),
        dict(name="s7_scale1_aligned", n=2, c=3, h=11, w=13, scale=1.0, out=7, ratio=2, aligned=True, k=10),
        dict(name="s14_quarter_legacy", n=1, c=4, h=16, w=12, scale=0.25, out=14, ratio=2, aligned=False, k=8),
        dict(name="s5_eighth_aligned_r3", n=3, c=2, h=9, w=10, scale=0.125, out=5, ratio=3, aligned=True, k=12),
        dict(name="s28_masks_legacy", n=2, c=1, h=40, w=36, scale=1.0, out=28, ratio=2, aligned=False, k=6),
        # adaptive grid (sampling_ratio -1): Mask R-CNN's mask targets, roi_align(masks, rois, 28, 1.0)
        dict(name="s28_adaptive_legacy", n=3, c=1, h=90, w=70, scale=1.0, out=28, ratio=-1, aligned=False, k=8),
        dict(name="s7_adaptive_aligned", n=2, c=2, h=30, w=40, scale=0.5, out=7, ratio=0, aligned=True, k=8),
    ]
    for s in specs:
        x = torch.randn(s["n"], s["c"], s["h"], s["w"], generator=g, dtype=torch.float32)
        rois = random_rois(g, s["n"], s["k"], s["h"], s["w"], s["scale"])
        xg = x.clone().requires_grad_(True)
        y = roi_align(xg, rois, (s["out"], s["out"]), s["scale"], s["ratio"], s["aligned"])
        gy = torch.randn(y.shape, generator=g)
        (gx,) = torch.autograd.grad(y, xg, gy)
        p = s["name"]
        io[f"{p}.input"], io[f"{p}.rois"], io[f"{p}.grad_output"] = x, rois, gy
        io[f"{p}.output"], io[f"{p}.grad_input"] = y.detach(), gx
        cases.append({"name": p, "kind": "roi_align", "output_size": s["out"], "spatial_scale": s["scale"],
                      "sampling_ratio": s["ratio"], "aligned": s["aligned"]})
    # MultiScaleRoIAlign over P2..P5 of a batch of two images (resized 120x100 and 96x128, padded
    # to 128x128), box and mask resolutions.
    sizes = [(120, 100), (96, 128)]
    for out in (7, 14):
        maps = OrderedDict((str(i), torch.randn(2, 3, 128 // 2 ** (i + 2), 128 // 2 ** (i + 2), generator=g))
                           for i in range(4))
        boxes = []
        for (h, w) in sizes:
            k = 14
            x1 = torch.rand(k, generator=g) * w * 0.8
            y1 = torch.rand(k, generator=g) * h * 0.8
            # scales from 2 px to the whole image: every level gets boxes
            side = torch.exp(torch.rand(k, generator=g) * 4.0) * 2.0
            bw = side * (0.5 + torch.rand(k, generator=g))
            bh = side * (0.5 + torch.rand(k, generator=g))
            boxes.append(torch.stack([x1, y1, (x1 + bw).clamp(max=w), (y1 + bh).clamp(max=h)], 1))
        boxes[0] = torch.cat([boxes[0], torch.tensor([[0.0, 0.0, 100.0, 120.0], [10.0, 10.0, 400.0, 300.0]])])
        pool = MultiScaleRoIAlign(["0", "1", "2", "3"], out, 2)
        xs = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in maps.items())
        y = pool(xs, boxes, sizes)
        gy = torch.randn(y.shape, generator=g)
        grads = torch.autograd.grad(y, list(xs.values()), gy)
        p = f"multiscale_s{out}"
        for i, m in enumerate(maps.values()):
            io[f"{p}.map.{i}"] = m
            io[f"{p}.grad_map.{i}"] = grads[i]
        io[f"{p}.rois"] = torch.cat([torch.cat([torch.full((b.shape[0], 1), float(i)), b], 1)
                                     for i, b in enumerate(boxes)])
        io[f"{p}.image_sizes"] = torch.tensor(sizes, dtype=torch.int64)
        io[f"{p}.grad_output"] = gy
        io[f"{p}.output"] = y.detach()
        cases.append({"name": p, "kind": "multiscale", "levels": 4, "output_size": out, "sampling_ratio": 2,
                      "aligned": False})
    save_safetensors(os.path.join(a.out, "roi_align.safetensors"), io,
                     {"cases": json.dumps(cases), "torchvision": torchvision.__version__, "torch": torch.__version__,
                      "script": "scripts/golden/torchvision_roi_align.py"})
    print(f"{len(cases)} cases, {len(io)} tensors")


if __name__ == "__main__":
    main()
