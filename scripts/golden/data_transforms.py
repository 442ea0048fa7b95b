"""Golden values for src/data/transforms.ts from torchvision 0.14's GeneralizedRCNNTransform.

Run with Debian's Python (torch 1.13, torchvision 0.14):
    /usr/bin/python3 scripts/golden/data_transforms.py > test/fixtures/data/transforms_golden.json
The input image is a formula of (y, x, c) so the test rebuilds it without a file.
"""
import json

import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def image(h, w):
    y = torch.arange(h).view(h, 1, 1)
    x = torch.arange(w).view(1, w, 1)
    c = torch.arange(3).view(1, 1, 3)
    v = (x * 7 + y * 13 + c * 50 + (x * y) % 17) % 256
    return v.to(torch.uint8)  # H, W, 3


def masks(h, w):
    y = torch.arange(h).view(1, h, 1)
    x = torch.arange(w).view(1, 1, w)
    k = torch.arange(2).view(2, 1, 1)
    return (((x + 2 * y + 3 * k) % 5) < 2).to(torch.uint8)  # 2, H, W


cases = []
for (h, w, min_size, max_size) in [(37, 53, 64, 100), (61, 45, 20, 30), (40, 90, 60, 100), (30, 30, 30, 1000)]:
    img = image(h, w)
    boxes = torch.tensor([[1.5, 2.25, 20.0, 30.0], [0.0, 0.0, float(w), float(h)]], dtype=torch.float32)
    m = masks(h, w)
    t = GeneralizedRCNNTransform(min_size, max_size, MEAN, STD).eval()
    tensor = img.permute(2, 0, 1).float() / 255
    il, targets = t([tensor], [{"boxes": boxes.clone(), "labels": torch.tensor([0, 1]), "masks": m.clone()}])
    out = il.tensors[0]
    oh, ow = il.image_sizes[0]
    flat = out[:, :oh, :ow].reshape(-1)
    idx = list(range(0, flat.numel(), 7))
    mflat = targets[0]["masks"].reshape(-1)
    cases.append({
        "height": h, "width": w, "min_size": min_size, "max_size": max_size,
        "out_height": oh, "out_width": ow,
        "batch_shape": list(out.shape),
        "sample_stride": 7,
        "sample": [float(flat[i]) for i in idx],
        "sum": float(flat.double().sum()),
        "boxes": targets[0]["boxes"].reshape(-1).tolist(),
        "masks_sum": int(mflat.sum()),
        "masks_sample": [int(mflat[i]) for i in range(0, mflat.numel(), 5)],  # stride 5
    })

print(json.dumps({"torch": torch.__version__, "cases": cases}))
