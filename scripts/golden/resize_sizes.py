"""Golden output sizes of torchvision 0.14's detection resize for every (h, w) in a range.

torchvision.models.detection.transform._resize_image_and_masks computes
    scale = torch.min(self_min_size / min_size, self_max_size / max_size)
on float32 0-dim tensors (torch evaluates `python_float / tensor` as tensor.reciprocal() * number,
in float32), then F.interpolate(scale_factor=scale.item(), recompute_scale_factor=True) takes
floor(float(size) * scale) per axis. This script evaluates torchvision's expression on the same
tensors for every shape, and checks it against torchvision's function itself (which resamples an
image, too slow for every shape) on a random sample and on every shape where the two float32
formulas disagree.

Run (Debian's python3-torchvision):
    /usr/bin/python3 scripts/golden/resize_sizes.py > test/fixtures/models/resize_sizes_golden.json
Output: per (min_size, max_size) config, the SHA-256 of the table "h w out_h out_w\n" for every
h, w in [lo, hi] (h outer, w inner), and how many rows (and an even sample of them, every
count // 100-th) differ from the sizes with a correctly rounded float32 division
min_size / min(h, w) (what mtpd computed before), so the test shows it exercises the difference.
Takes about 20 minutes on two busy cores.
"""
import hashlib
import json
import math
import random

import numpy as np
import torch
from torchvision.models.detection import transform as T

LO, HI = 1, 400
CONFIGS = [(96, 160), (192, 320), (256, 320), (512, 640), (800, 1333)]


def torch_size(h, w, min_size, max_size):
    im_shape = torch.tensor([h, w])
    mn = torch.min(im_shape).to(dtype=torch.float32)
    mx = torch.max(im_shape).to(dtype=torch.float32)
    scale = torch.min(float(min_size) / mn, float(max_size) / mx).item()
    return int(math.floor(float(h) * scale)), int(math.floor(float(w) * scale))


def division_size(h, w, min_size, max_size):
    f = np.float32
    scale = float(min(f(min_size) / f(min(h, w)), f(max_size) / f(max(h, w))))
    return int(math.floor(float(h) * scale)), int(math.floor(float(w) * scale))


def main():
    torch.set_num_threads(1)
    rng = random.Random(0)
    out = {"torch": torch.__version__, "torchvision": __import__("torchvision").__version__,
           "lo": LO, "hi": HI, "configs": []}
    for min_size, max_size in CONFIGS:
        lines = []
        differs = []
        for h in range(LO, HI + 1):
            for w in range(LO, HI + 1):
                oh, ow = torch_size(h, w, min_size, max_size)
                lines.append(f"{h} {w} {oh} {ow}\n")
                if (oh, ow) != division_size(h, w, min_size, max_size):
                    differs.append([h, w, oh, ow])
        # torchvision's own function on a sample of shapes (and every differing one) agrees
        sample = [(rng.randint(LO, HI), rng.randint(LO, HI)) for _ in range(200)] + [(d[0], d[1]) for d in differs]
        for h, w in sample:
            if 0 in torch_size(h, w, min_size, max_size):
                continue  # interpolate refuses an empty output (so does mtpd)
            img, _ = T._resize_image_and_masks(torch.zeros(1, h, w), float(min_size), float(max_size))
            assert tuple(img.shape[-2:]) == torch_size(h, w, min_size, max_size), (h, w, min_size, max_size)
        out["configs"].append({"min_size": min_size, "max_size": max_size,
                               "sha256": hashlib.sha256("".join(lines).encode()).hexdigest(),
                               "differs_count": len(differs),
                               "differs_sample": differs[::max(1, len(differs) // 100)]})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
