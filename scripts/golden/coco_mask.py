#!/usr/bin/env python3
"""Golden values for src/coco/mask.ts, computed with pycocotools' mask API.

Run with Debian's /usr/bin/python3 and pycocotools built from source (cocodataset/cocoapi PythonAPI):
  PYTHONPATH=/path/to/cocoapi/PythonAPI /usr/bin/python3 scripts/golden/coco_mask.py
Writes test/fixtures/coco/mask_golden.json (inputs and expected outputs; CI needs no Python).
"""
import json
import os

import numpy as np
import pycocotools.mask as M

rng = np.random.RandomState(20231)
OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'coco', 'mask_golden.json')


def rle_json(r):
    return {'size': [int(r['size'][0]), int(r['size'][1])], 'counts': r['counts'].decode('ascii')}


def random_mask(h, w, kind):
    if kind == 'blob':
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(1, h / 2 + 1), rng.uniform(1, w / 2 + 1)
        return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)
    if kind == 'noise':
        return (rng.uniform(size=(h, w)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
    if kind == 'empty':
        return np.zeros((h, w), np.uint8)
    if kind == 'full':
        return np.ones((h, w), np.uint8)
    raise ValueError(kind)


def random_polygon(h, w):
    n = rng.randint(3, 12)
    cx, cy = rng.uniform(-0.2 * w, 1.2 * w), rng.uniform(-0.2 * h, 1.2 * h)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.5, max(h, w) / 2, n)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).reshape(-1)
    if rng.uniform() < 0.3:
        pts = np.round(pts)  # integer vertices hit the .5 rounding paths
    if rng.uniform() < 0.15:
        pts = rng.permutation(pts.reshape(-1, 2)).reshape(-1)  # self-intersecting
    return [float(v) for v in pts]


cases = {'encode': [], 'poly': [], 'bbox': [], 'merge': [], 'iou': [], 'bboxIou': [], 'strings': [],
         'uncompressed': []}

# encode / decode / area / toBbox on masks of every kind, including 1-pixel-wide shapes
for i in range(40):
    h, w = int(rng.randint(1, 40)), int(rng.randint(1, 40))
    kind = ['blob', 'noise', 'empty', 'full'][i % 4] if i < 8 else ['blob', 'noise'][i % 2]
    m = random_mask(h, w, kind)
    r = M.encode(np.asfortranarray(m))
    cases['encode'].append({
        'h': h, 'w': w, 'mask': m.reshape(-1).tolist(),  # row-major
        'rle': rle_json(r), 'area': int(M.area(r)), 'bbox': M.toBbox(r).tolist(),
    })

# polygons -> RLE (rleFrPoly), incl. odd-length, out of image, tiny and degenerate
for i in range(120):
    h, w = int(rng.randint(1, 120)), int(rng.randint(1, 120))
    polys = [random_polygon(h, w) for _ in range(rng.randint(1, 4))]
    if i % 17 == 0:
        polys[0] = polys[0] + [float(rng.uniform(0, w))]  # odd length: last number dropped
    if i % 23 == 0:
        polys[0] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # degenerate
    rles = M.frPyObjects(polys, h, w)
    merged = M.merge(rles)
    inter = M.merge(rles, intersect=True)
    cases['poly'].append({
        'h': h, 'w': w, 'polygons': polys, 'rles': [rle_json(r) for r in rles],
        'merged': rle_json(merged), 'intersect': rle_json(inter),
        'area': int(M.area(merged)), 'bbox': M.toBbox(merged).tolist(),
    })

# boxes -> RLE (rleFrBbox)
for i in range(40):
    h, w = int(rng.randint(1, 80)), int(rng.randint(1, 80))
    bb = [float(rng.uniform(-10, w)), float(rng.uniform(-10, h)), float(rng.uniform(0, w)), float(rng.uniform(0, h))]
    if i % 3 == 0:
        bb = [float(round(v)) for v in bb]
    r = M.frPyObjects(np.array([bb], dtype=np.double), h, w)[0]
    cases['bbox'].append({'h': h, 'w': w, 'box': bb, 'rle': rle_json(r)})

# uncompressed RLE (iscrowd style) -> compressed
for i in range(10):
    h, w = int(rng.randint(1, 60)), int(rng.randint(1, 60))
    m = random_mask(h, w, 'blob' if i % 2 else 'noise')
    r = M.encode(np.asfortranarray(m))
    counts = []
    p, c = 0, 0
    for v in m.reshape(-1, order='F'):
        if v != p:
            counts.append(c); c = 0; p = v
        c += 1
    counts.append(c)
    ur = {'size': [h, w], 'counts': counts}
    cr = M.frPyObjects(ur, h, w)
    cases['uncompressed'].append({'rle': ur, 'compressed': rle_json(cr)})
    assert rle_json(cr) == rle_json(r)

# long runs and negative deltas in the string format
for i in range(8):
    h, w = int(rng.randint(500, 3000)), int(rng.randint(500, 3000))
    m = np.zeros((h, w), np.uint8)
    for _ in range(rng.randint(1, 6)):
        y0, x0 = rng.randint(0, h), rng.randint(0, w)
        m[y0:y0 + rng.randint(1, h), x0:x0 + rng.randint(1, w)] = 1
    r = M.encode(np.asfortranarray(m))
    cases['strings'].append({'rle': rle_json(r), 'area': int(M.area(r)), 'bbox': M.toBbox(r).tolist()})

# merge of several same-size masks, union and intersection
for i in range(20):
    h, w = int(rng.randint(1, 50)), int(rng.randint(1, 50))
    rs = [M.encode(np.asfortranarray(random_mask(h, w, ['blob', 'noise'][j % 2]))) for j in range(rng.randint(1, 5))]
    cases['merge'].append({'rles': [rle_json(r) for r in rs], 'union': rle_json(M.merge(rs)),
                           'intersect': rle_json(M.merge(rs, intersect=True))})

# mask IoU with crowd flags, and a size mismatch (-1 where the boxes overlap)
for i in range(25):
    h, w = int(rng.randint(5, 60)), int(rng.randint(5, 60))
    dts = [M.encode(np.asfortranarray(random_mask(h, w, 'blob' if j % 3 else 'noise'))) for j in range(rng.randint(0, 6))]
    gts = [M.encode(np.asfortranarray(random_mask(h, w, 'blob'))) for j in range(rng.randint(0, 5))]
    if i % 5 == 0:
        gts.append(M.encode(np.asfortranarray(random_mask(h + 1, w, 'full'))))
    if i % 7 == 0:
        dts.append(M.encode(np.asfortranarray(random_mask(h, w, 'empty'))))
    crowd = [int(rng.uniform() < 0.3) for _ in gts]
    o = M.iou(dts, gts, crowd)
    o = np.asarray(o).reshape(len(dts), len(gts)) if len(o) else np.zeros((len(dts), len(gts)))
    cases['iou'].append({'dt': [rle_json(r) for r in dts], 'gt': [rle_json(r) for r in gts], 'iscrowd': crowd,
                         'iou': o.reshape(-1).tolist()})

# box IoU (xywh) with crowd flags, incl. touching and identical boxes
for i in range(25):
    m, n = int(rng.randint(1, 8)), int(rng.randint(1, 6))
    dt = rng.uniform(0, 50, (m, 4)); gt = rng.uniform(0, 50, (n, 4))
    if i % 4 == 0:
        dt = np.round(dt); gt = np.round(gt)
        dt[0] = gt[0]
        dt[-1] = [gt[0][0] + gt[0][2], gt[0][1], 5, 5]  # touching: 0
    crowd = [int(rng.uniform() < 0.3) for _ in range(n)]
    o = np.asarray(M.iou(dt.tolist(), gt.tolist(), crowd)).reshape(m, n)
    cases['bboxIou'].append({'dt': dt.tolist(), 'gt': gt.tolist(), 'iscrowd': crowd, 'iou': o.reshape(-1).tolist()})

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, 'w') as f:
    json.dump({'generator': 'scripts/golden/coco_mask.py', 'cases': cases}, f, separators=(',', ':'))
print('wrote', os.path.normpath(OUT), {k: len(v) for k, v in cases.items()})
