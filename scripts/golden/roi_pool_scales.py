#!/usr/bin/python3
"""Golden numbers for the scales torchvision 0.14's MultiScaleRoIAlign pools at, over several calls.

torchvision infers each FPN level's scale from the first batch a MultiScaleRoIAlign instance sees
(`if self.scales is None: self.scales, self.map_levels = _setup_scales(...)`, from the map heights
over the largest resized image height) and keeps it for every later call. A very flat image
(resized height far below the padded height, e.g. 5 of 32) infers other scales than a usual one,
so the same image gives different detections depending on what the model saw first.

Takes the reduced-width Mask R-CNN fixture maskrcnn_resnet18_small (test/fixtures/models, made by
torchvision_maskrcnn.py) and runs, on that model's weights:
  fresh.*   a new model, the flat image first (its own scales);
  after.*   a new model, first a usual image (`usual.*`), then the flat image (the usual scales),
            then the training losses on the flat image (loss.*, after torch.manual_seed(loss_seed)).
The test also restores kept scales on a fresh model (mtpd's roiScales / setRoiScales, what a resumed
training stage does) and checks it against after.*, and checks mtpd's roi_scales "strides"
(mmdetection's fixed 1/stride) against after.* too: torchvision after a usual image pools at 1/stride.
Writes <out>/maskrcnn_roi_scales.safetensors (labels are mtpd's: torchvision's minus 1), checked by
test/models/roi-pool-scales.test.ts.

  /usr/bin/python3 scripts/golden/roi_pool_scales.py --out test/fixtures/models
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_maskrcnn import SMALL, build, images_and_targets  # noqa: E402
from torchvision_retinanet import save_safetensors  # noqa: E402

NAME = "maskrcnn_resnet18_small"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    spec = next(s for s in SMALL if s["name"] == NAME)
    # the usual image: the fixture's first; the flat one: 12 x 200 (resized 5 x 96, padded 32 x 96)
    (usual, flat), (_, flat_t) = images_and_targets(spec["seed"], [spec["image_sizes"][0], (12, 200)],
                                                    spec["num_classes"])
    io = OrderedDict(image_usual=usual, image_flat=flat, **{"target.boxes": flat_t["boxes"],
                                                            "target.labels": flat_t["labels"] - 1,
                                                            "target.masks": flat_t["masks"]})
    fresh = build(spec).eval()
    after = build(spec).eval()
    after.load_state_dict(fresh.state_dict())
    with torch.no_grad():
        d = fresh([flat])[0]
        scales_fresh = fresh.roi_heads.box_roi_pool.scales
        u = after([usual])[0]
        e = after([flat])[0]
        scales_after = after.roi_heads.box_roi_pool.scales
    assert scales_fresh != scales_after, (scales_fresh, scales_after)
    for prefix, det in (("fresh", d), ("usual", u), ("after", e)):
        io[f"{prefix}.boxes"] = det["boxes"]
        io[f"{prefix}.scores"] = det["scores"]
        io[f"{prefix}.labels"] = det["labels"] - 1
        io[f"{prefix}.masks"] = det["masks"]
    after.train()
    loss_seed = spec["seed"] + 200
    torch.manual_seed(loss_seed)
    losses = after([flat], [dict(flat_t)])
    for k, v in losses.items():
        io[f"loss.{k}"] = v.detach()
    os.makedirs(a.out, exist_ok=True)
    save_safetensors(os.path.join(a.out, "maskrcnn_roi_scales.safetensors"), io,
                     {"weights": f"{NAME}.weights.safetensors", "config": json.dumps({k: spec[k] for k in (
                         "backbone", "num_classes", "min_size", "max_size", "width_mult")} | spec["tv"]),
                      "loss_seed": str(loss_seed), "scales_fresh": json.dumps(scales_fresh),
                      "scales_after": json.dumps(scales_after), "script": "scripts/golden/roi_pool_scales.py"})
    print(f"scales: fresh {scales_fresh}, after a usual image {scales_after}; detections "
          f"fresh {len(d['scores'])}, usual {len(u['scores'])}, after {len(e['scores'])}; "
          f"losses { {k: round(v.item(), 5) for k, v in losses.items()} }")


if __name__ == "__main__":
    main()
