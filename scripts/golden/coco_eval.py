#!/usr/bin/env python3
"""Golden COCOeval results for src/eval, computed with pycocotools (cocodataset/cocoapi PythonAPI).

  PYTHONPATH=/path/to/cocoapi/PythonAPI /usr/bin/python3 scripts/golden/coco_eval.py

Writes test/fixtures/coco/eval_golden.json: for every case the ground truth, the results, and
pycocotools' stats, per-category stats (summarize() restricted to one category), recall, and
precision (the full array for small cases, the [:, :, :, all, 100] slice otherwise). CI needs
no Python. Note: with numpy >= 1.24, cocoeval.py's `np.float` must read `np.float64` (same type).
"""
import copy
import os
import sys

import numpy as np
import pycocotools.mask as M

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cocoeval_golden import Golden, rle_json  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'coco', 'eval_golden.json')
rng = np.random.RandomState(5)


def poly_of_box(x, y, w, h, n, jitter):
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    cx, cy = x + w / 2, y + h / 2
    pts = np.stack([cx + (w / 2) * np.cos(ang) * rng.uniform(1 - jitter, 1, n),
                    cy + (h / 2) * np.sin(ang) * rng.uniform(1 - jitter, 1, n)], 1)
    return [round(float(v), 2) for v in pts.reshape(-1)]


def make_dataset(n_img, n_cat, gt_per_img, crowd_p=0.1, size=(40, 200), gt_id0=False):
    images, anns, cats = [], [], [{'id': c * 3 + 1, 'name': 'cat%d' % c} for c in range(n_cat)]
    aid = 0 if gt_id0 else 1
    for i in range(n_img):
        h, w = int(rng.randint(*size)), int(rng.randint(*size))
        img_id = int(rng.randint(1, 10 ** 6)) if i % 3 else i + 1  # unsorted, sparse ids
        while any(im['id'] == img_id for im in images):
            img_id += 1
        images.append({'id': img_id, 'height': h, 'width': w})
        for _ in range(rng.poisson(gt_per_img)):
            bw = float(np.round(rng.uniform(2, w * 0.9), 1 if rng.uniform() < 0.5 else 0))
            bh = float(np.round(rng.uniform(2, h * 0.9), 1 if rng.uniform() < 0.5 else 0))
            x = float(np.round(rng.uniform(0, w - bw), 2)); y = float(np.round(rng.uniform(0, h - bh), 2))
            cat = cats[rng.randint(n_cat)]['id']
            crowd = int(rng.uniform() < crowd_p)
            if crowd:
                m = np.zeros((h, w), np.uint8)
                m[int(y):int(y + bh), int(x):int(x + bw)] = 1
                r = M.encode(np.asfortranarray(m))
                counts = []
                p, c = 0, 0
                for v in m.reshape(-1, order='F'):
                    if v != p:
                        counts.append(c); c = 0; p = v
                    c += 1
                counts.append(c)
                seg = {'size': [h, w], 'counts': counts}
                area = float(M.area(r))
                bbox = M.toBbox(r).tolist()
            else:
                seg = [poly_of_box(x, y, bw, bh, int(rng.randint(4, 12)), 0.3)]
                if rng.uniform() < 0.2:
                    seg.append(poly_of_box(x, y, bw / 2, bh / 2, 5, 0.1))
                r = M.merge(M.frPyObjects(seg, h, w))
                area = float(M.area(r)) if rng.uniform() < 0.7 else float(bw * bh)
                bbox = [x, y, bw, bh]
            anns.append({'id': aid, 'image_id': img_id, 'category_id': cat, 'bbox': bbox, 'area': area,
                         'iscrowd': crowd, 'segmentation': seg})
            aid += 1
    return {'images': images, 'categories': cats, 'annotations': anns}


def make_dets(gt, per_gt=1.2, fp_per_img=3, iou_type='bbox', with_bbox=True, score_decimals=2):
    imgs = {im['id']: im for im in gt['images']}
    dets = []
    def score():
        return float(np.round(rng.uniform(0, 1), score_decimals))
    for a in gt['annotations']:
        im = imgs[a['image_id']]
        for _ in range(rng.poisson(per_gt)):
            x, y, w, h = a['bbox']
            s = rng.uniform(0.0, 0.25)
            bb = [round(float(x + rng.normal(0, s * w)), 2), round(float(y + rng.normal(0, s * h)), 2),
                  round(float(max(1, w * rng.uniform(1 - s, 1 + s))), 2), round(float(max(1, h * rng.uniform(1 - s, 1 + s))), 2)]
            cat = a['category_id'] if rng.uniform() < 0.9 else gt['categories'][rng.randint(len(gt['categories']))]['id']
            seg = None
            if iou_type == 'segm' and isinstance(a['segmentation'], list):
                # the gt outline, moved and scaled like the box, with vertex noise
                sx, sy = bb[2] / w, bb[3] / h
                seg = []
                for poly in a['segmentation']:
                    q = np.array(poly).reshape(-1, 2)
                    q = (q - [x, y]) * [sx, sy] + [bb[0], bb[1]] + rng.normal(0, 0.5 + s * 4, q.shape)
                    seg.append([round(float(v), 2) for v in q.reshape(-1)])
            dets.append(det(im, cat, bb, score(), iou_type, with_bbox, seg))
    for im in gt['images']:
        for _ in range(rng.poisson(fp_per_img)):
            w, h = im['width'], im['height']
            bw, bh = rng.uniform(2, w / 2), rng.uniform(2, h / 2)
            bb = [round(float(rng.uniform(0, w - bw)), 2), round(float(rng.uniform(0, h - bh)), 2), round(float(bw), 2), round(float(bh), 2)]
            cat = gt['categories'][rng.randint(len(gt['categories']))]['id']
            dets.append(det(im, cat, bb, score(), iou_type, with_bbox))
    order = rng.permutation(len(dets))
    return [dets[i] for i in order]


def det(im, cat, bb, score, iou_type, with_bbox, seg=None):
    d = {'image_id': im['id'], 'category_id': cat, 'score': score}
    if iou_type == 'segm':
        seg = seg or [poly_of_box(*bb, int(rng.randint(4, 10)), 0.2)]
        d['segmentation'] = rle_json(M.merge(M.frPyObjects(seg, im['height'], im['width'])))
    if with_bbox or iou_type == 'bbox':
        d['bbox'] = bb
    return d


golden = Golden('scripts/golden/coco_eval.py', OUT)


def add(name, gt, dets, iou_type, full_precision, img_ids=None):
    precision = 'scores' if full_precision == 'scores' else 'full' if full_precision else 'slice'
    E, stats = golden.add(name, gt, dets, iou_type, precision, img_ids)
    print('%-28s %s AP=%.4f AR100=%.4f dets=%d gts=%d' % (name, iou_type, stats[0], stats[8], len(dets), len(gt['annotations'])))


# 1. hand-made: exact IoU thresholds (0.5, 0.75, 0.95), area boundaries (1024 is small AND medium),
#    crowd matched many times, ignore ordering, score ties within and across images, a category
#    without gt (-1), a category without detections, an image without gt, an image without dets.
hand_gt = {
    'images': [{'id': 7, 'height': 100, 'width': 120}, {'id': 3, 'height': 80, 'width': 80},
               {'id': 12, 'height': 50, 'width': 50}, {'id': 20, 'height': 64, 'width': 64}],
    'categories': [{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'b'}, {'id': 5, 'name': 'nogt'}, {'id': 9, 'name': 'nodet'}],
    'annotations': [
        {'id': 1, 'image_id': 7, 'category_id': 1, 'bbox': [0, 0, 10, 10], 'area': 100.0, 'iscrowd': 0},
        {'id': 2, 'image_id': 7, 'category_id': 1, 'bbox': [50, 50, 32, 32], 'area': 1024.0, 'iscrowd': 0},
        {'id': 3, 'image_id': 7, 'category_id': 1, 'bbox': [20, 0, 60, 60], 'area': 3600.0, 'iscrowd': 1},
        {'id': 4, 'image_id': 3, 'category_id': 1, 'bbox': [10, 10, 40, 40], 'area': 9216.0, 'iscrowd': 0},
        {'id': 5, 'image_id': 3, 'category_id': 2, 'bbox': [0, 0, 20, 20], 'area': 400.0, 'iscrowd': 0},
        {'id': 6, 'image_id': 3, 'category_id': 2, 'bbox': [0, 0, 20, 20], 'area': 400.0, 'iscrowd': 0},
        {'id': 7, 'image_id': 20, 'category_id': 9, 'bbox': [1, 1, 30, 30], 'area': 900.0, 'iscrowd': 0},
        {'id': 8, 'image_id': 20, 'category_id': 2, 'bbox': [5, 5, 10, 10], 'area': 100.0, 'iscrowd': 1},
    ]}
hand_dets = [
    {'image_id': 7, 'category_id': 1, 'bbox': [0, 0, 10, 5], 'score': 0.9},       # IoU 0.5 exactly
    {'image_id': 7, 'category_id': 1, 'bbox': [0, 0, 10, 7.5], 'score': 0.9},     # IoU 0.75, tie
    {'image_id': 7, 'category_id': 1, 'bbox': [0, 0, 10, 9.5], 'score': 0.8},     # IoU 0.95
    {'image_id': 7, 'category_id': 1, 'bbox': [50, 50, 32, 31], 'score': 0.8},
    {'image_id': 7, 'category_id': 1, 'bbox': [25, 5, 20, 20], 'score': 0.7},     # inside crowd
    {'image_id': 7, 'category_id': 1, 'bbox': [30, 10, 20, 20], 'score': 0.7},    # inside crowd too
    {'image_id': 7, 'category_id': 1, 'bbox': [100, 90, 5, 5], 'score': 0.6},     # small fp
    {'image_id': 3, 'category_id': 1, 'bbox': [10, 10, 40, 40], 'score': 0.9},
    {'image_id': 3, 'category_id': 1, 'bbox': [12, 10, 40, 40], 'score': 0.9},
    {'image_id': 3, 'category_id': 2, 'bbox': [0, 0, 20, 20], 'score': 0.5},
    {'image_id': 3, 'category_id': 2, 'bbox': [0, 0, 20, 21], 'score': 0.5},
    {'image_id': 3, 'category_id': 2, 'bbox': [0, 0, 20, 19], 'score': 0.5},
    {'image_id': 12, 'category_id': 5, 'bbox': [1, 1, 10, 10], 'score': 0.4},     # category without gt
    {'image_id': 12, 'category_id': 2, 'bbox': [1, 1, 10, 10], 'score': 0.5},
    {'image_id': 20, 'category_id': 2, 'bbox': [5, 5, 10, 10], 'score': 0.3},     # on a crowd: ignored
    {'image_id': 20, 'category_id': 2, 'bbox': [6, 6, 2, 2], 'score': 0.3},
]
add('hand_bbox', hand_gt, hand_dets, 'bbox', 'scores')

# 2. maxDets: one image with 150 detections of one category, others with 1..20
md_gt = make_dataset(6, 2, 12, crowd_p=0.05)
md_dets = make_dets(md_gt, per_gt=1.5, fp_per_img=8)
im0 = md_gt['images'][0]
for j in range(150):
    md_dets.append({'image_id': im0['id'], 'category_id': md_gt['categories'][0]['id'], 'score': float(np.round(rng.uniform(), 1)),
                    'bbox': [float(rng.uniform(0, 30)), float(rng.uniform(0, 30)), float(rng.uniform(5, 30)), float(rng.uniform(5, 30))]})
add('maxdets_bbox', md_gt, md_dets, 'bbox', 'scores')

# 3. score ties everywhere (one decimal), gt ids starting at 0 (pycocotools' dtm == 0 quirk)
tie_gt = make_dataset(12, 3, 5, gt_id0=True)
add('ties_gtid0_bbox', tie_gt, make_dets(tie_gt, score_decimals=1), 'bbox', False)

# 4. restricted imgIds (params.imgIds)
add('imgids_bbox', tie_gt, make_dets(tie_gt), 'bbox', False,
    img_ids=[tie_gt['images'][1]['id'], tie_gt['images'][4]['id'], tie_gt['images'][5]['id']])

# 5. no detections at all: zeros where gt exists (pycocotools itself crashes in loadRes)
add('empty_results_bbox', tie_gt, [], 'bbox', False)

# 6. segm: polygons and uncompressed-RLE crowds in gt; compressed RLE results with bbox
#    (loadRes: area = box area) and without (area = mask area)
sg_gt = make_dataset(10, 3, 6, crowd_p=0.15)
add('segm_with_bbox', sg_gt, make_dets(sg_gt, iou_type='segm', with_bbox=True), 'segm', False)
add('segm_mask_area', sg_gt, make_dets(sg_gt, iou_type='segm', with_bbox=False), 'segm', False)
# bbox evaluation of segm-only results: bbox = toBbox(mask)
add('bbox_from_masks', sg_gt, make_dets(sg_gt, iou_type='segm', with_bbox=False), 'bbox', False)
# results with boxes only, segm evaluation: each box rasterised as a polygon
add('segm_from_boxes', sg_gt, make_dets(sg_gt, iou_type='bbox'), 'segm', False)

# 7. segm: result masks of a different size than their image (IoU -1, never matched)
mm_dets = make_dets(sg_gt, iou_type='segm', with_bbox=True)
for d in mm_dets[::4]:
    im = next(i for i in sg_gt['images'] if i['id'] == d['image_id'])
    poly = poly_of_box(*d['bbox'], 6, 0.1)
    d['segmentation'] = rle_json(M.merge(M.frPyObjects([poly], im['height'] + 1, im['width'])))
add('segm_size_mismatch', sg_gt, mm_dets, 'segm', False)

# 8. every encoding at once: gt with compressed RLE (non-crowd and crowd) besides polygons and
#    uncompressed crowds; results (with bbox, so loadRes keeps their segmentation as given) as
#    polygons, uncompressed RLE and compressed RLE
enc_gt = copy.deepcopy(sg_gt)
for j, a in enumerate(enc_gt['annotations']):
    if j % 3 == 0:
        im = next(i for i in enc_gt['images'] if i['id'] == a['image_id'])
        seg = a['segmentation']
        r = M.merge(M.frPyObjects(seg, im['height'], im['width'])) if isinstance(seg, list) else M.frPyObjects(seg, im['height'], im['width'])
        a['segmentation'] = rle_json(r)
enc_dets = make_dets(enc_gt, iou_type='segm', with_bbox=True)
for j, d in enumerate(enc_dets):
    im = next(i for i in enc_gt['images'] if i['id'] == d['image_id'])
    if j % 3 == 1:
        d['segmentation'] = [poly_of_box(*d['bbox'], 7, 0.2)]
    elif j % 3 == 2:
        m = M.decode({'size': d['segmentation']['size'], 'counts': d['segmentation']['counts'].encode()})
        counts, p, c = [], 0, 0
        for v in m.reshape(-1, order='F'):
            if v != p:
                counts.append(c); c = 0; p = v
            c += 1
        counts.append(c)
        d['segmentation'] = {'size': [im['height'], im['width']], 'counts': counts}
add('segm_all_encodings', enc_gt, enc_dets, 'segm', False)

# 9. large random cases
big_gt = make_dataset(100, 8, 7, crowd_p=0.05, size=(60, 160))
add('large_bbox', big_gt, make_dets(big_gt, per_gt=1.3, fp_per_img=10, score_decimals=3), 'bbox', False)
add('large_segm', big_gt, make_dets(big_gt, per_gt=1.3, fp_per_img=10, iou_type='segm', with_bbox=True, score_decimals=3), 'segm', False)

golden.write()
