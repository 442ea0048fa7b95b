"""Golden values for the synthetic dataset (src/data/synth.ts) from pycocotools.

Make the dataset, then run this on it (Debian's Python has pycocotools):
    node dist/cli.js data synth --out /tmp/mtpd-synth-golden --images 1 --val-images 10 --size 224 --seed 3 --workers 0
    PYTHONPATH=/path/to/cocoapi/PythonAPI /usr/bin/python3 scripts/golden/data_synth.py /tmp/mtpd-synth-golden/instances_val.json > test/fixtures/data/synth_golden.json
The test regenerates the same dataset and checks: the annotation file is byte-identical (the
generator is deterministic across versions: rerun this after an intended change), every area is
pycocotools' mask area, and mtpd's COCO evaluation of fixed detections gives pycocotools' stats.
"""
import contextlib
import copy
import hashlib
import io
import json
import sys

from pycocotools import mask as maskUtils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

path = sys.argv[1]
raw = open(path, "rb").read()
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(path)

anns = []
for a in gt.dataset["annotations"]:
    rle = gt.annToRLE(a)
    anns.append({
        "id": a["id"],
        "area": float(maskUtils.area(rle)),
        "rle_bbox": [float(v) for v in maskUtils.toBbox(rle)],
    })

# Deterministic detections: jittered ground-truth boxes and polygons with made-up scores, some
# with the wrong class, plus the ground truth's own masks as RLE strings.
dets_bbox = []
dets_segm = []
ncat = len(gt.getCatIds())
for a in gt.dataset["annotations"]:
    if a["iscrowd"]:
        continue
    i = a["id"]
    x, y, w, h = a["bbox"]
    j = ((i * 7) % 5 - 2) * 0.15
    cat = a["category_id"] if i % 6 else (a["category_id"] % ncat) + 1
    score = round(((i * 37) % 100) / 100 + 0.005, 3)
    dets_bbox.append({"image_id": a["image_id"], "category_id": cat, "score": score,
                      "bbox": [round(x + j * w, 2), round(y - j * h, 2), round(w * (1 + abs(j)), 2), round(h, 2)]})
    img = gt.imgs[a["image_id"]]
    rle = maskUtils.frPyObjects(a["segmentation"], img["height"], img["width"])
    rle = maskUtils.merge(rle)
    dets_segm.append({"image_id": a["image_id"], "category_id": cat, "score": score,
                      "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}})


def stats(dets, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(copy.deepcopy(dets))  # loadRes adds fields to the dicts
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


print(json.dumps({
    "command": "data synth --images 1 --val-images 10 --size 224 --seed 3",
    "sha256": hashlib.sha256(raw).hexdigest(),
    "annotations": anns,
    "dets_bbox": dets_bbox,
    "dets_segm": dets_segm,
    "stats_bbox": stats(dets_bbox, "bbox"),
    "stats_segm": stats(dets_segm, "segm"),
}))
