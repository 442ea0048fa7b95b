#!/usr/bin/python3
"""Golden RPN anchors of mmdetection's two-stage configs (mask_rcnn_r50_fpn, cascade_mask_rcnn_r50_fpn),
from mmdetection's own AnchorGenerator:

  rpn_head.anchor_generator = dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                   strides=[4, 8, 16, 32, 64])

grid_anchors over the FPN's P2..P6 grids of a padded batch (P2..P5: H / 4 .. H / 32, P6:
max_pool2d(P5, 1, 2) = ceil(H / 64)), for a few padded batch sizes, concatenated over the levels
(mtpd's order: level, then cell row-major, then anchor). torchvision tiles P6 at stride
H // grid (53 for H = 160) and rounds its cell anchors; mmdetection does neither, which is what
`anchor_style: mmdet` reproduces (test/zoo/mmdet-rpn-anchors.test.ts).

The AnchorGenerator class is taken unchanged from mmdet/core/anchor/anchor_generator.py at
866d7b19aecc502b49f1db58dcef11b089533c12 (the file scripts/golden/mmdet_retinanet.py reads, loaded
with its load_defs); keep it outside the repository:

  /usr/bin/python3 scripts/golden/mmdet_rpn_anchors.py --mmdet DIR --out test/fixtures/zoo

DIR holds anchor_generator.py.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmdet_retinanet import NS, load_defs  # noqa: E402
from torchvision_retinanet import save_safetensors  # noqa: E402

BATCHES = [(64, 96), (96, 128), (160, 224)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mmdet", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(os.path.join(a.mmdet, "anchor_generator.py")) as f:
        load_defs(f.read(), ["AnchorGenerator"], "anchor_generator.py")
    gen = NS["AnchorGenerator"](strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8])
    out, meta = {}, {}
    for h, w in BATCHES:
        grids = [(h // s, w // s) for s in (4, 8, 16, 32)]
        grids.append((math.ceil(grids[-1][0] / 2), math.ceil(grids[-1][1] / 2)))
        anchors = gen.grid_anchors(grids, device="cpu")
        out[f"anchors.{h}x{w}"] = torch.cat(anchors, 0)
        meta[f"{h}x{w}"] = grids
        print(f"{h}x{w}: grids {grids}, {out[f'anchors.{h}x{w}'].shape[0]} anchors")
    os.makedirs(a.out, exist_ok=True)
    save_safetensors(os.path.join(a.out, "mmdet_rpn_anchors.safetensors"), out,
                     {"grids": json.dumps(meta), "torch": torch.__version__,
                      "mmdet_anchor_generator": "866d7b19aecc502b49f1db58dcef11b089533c12",
                      "script": "scripts/golden/mmdet_rpn_anchors.py"})


if __name__ == "__main__":
    main()
