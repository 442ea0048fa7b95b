#!/usr/bin/env python3
"""Times pycocotools' COCOeval on the files scripts/bench/eval.mjs wrote; prints one JSON line.

usage: eval_pycocotools.py GT.json DETS.json bbox|segm
"""
import contextlib
import io
import json
import sys
import time

# numpy >= 1.24 removed np.float, which old pycocotools' accumulate() still uses
import numpy as np
if not hasattr(np, 'float'):
    np.float = float

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

gt_path, dets_path, iou_type = sys.argv[1:4]
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(gt_path)
    dt = gt.loadRes(dets_path)
    t1 = time.perf_counter()
    E = COCOeval(gt, dt, iou_type)
    E.evaluate()
    t2 = time.perf_counter()
    E.accumulate()
    E.summarize()
t3 = time.perf_counter()
print(json.dumps({'stats': E.stats.tolist(), 'load_s': t1 - t0, 'evaluate_s': t2 - t1, 'accumulate_s': t3 - t2, 'total_s': t3 - t0}))
