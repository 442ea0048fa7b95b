#!/usr/bin/env python3
"""Golden COCOeval results for inputs that pycocotools evaluates but that are easy to get wrong,
computed with pycocotools (cocodataset/cocoapi PythonAPI):

  PYTHONPATH=/path/to/cocoapi/PythonAPI /usr/bin/python3 scripts/golden/coco_eval_edges.py

  - boxes with a negative width or height (results and ground truth): bbIou gives them no
    overlap, their area w*h can be negative (outside every area range, so an unmatched one is
    ignored rather than a false positive, yet it takes a maxDets slot), and rasterised for segm
    they are the same rectangle;
  - segm results of loadRes' mask branch carrying `bbox: []` (kept as is, never read for segm);
  - ground-truth annotations whose image_id or category_id the file does not list: left out
    (COCOeval._prepare reads the annotations of the listed images and categories only), even
    without the fields an evaluated annotation needs.

Writes test/fixtures/coco/eval_edges_golden.json in the layout of scripts/golden/coco_eval.py
(ground truths by key, cases with stats, per-category stats, recall and the precision at
[:, :, :, all, 100]). Note: with numpy >= 1.24, cocoeval.py's `np.float` must read `np.float64`
(same type).
"""
import copy
import os
import sys

import numpy as np
import pycocotools.mask as M

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cocoeval_golden import Golden, rle_json  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'coco', 'eval_edges_golden.json')
rng = np.random.RandomState(11)


golden = Golden('scripts/golden/coco_eval_edges.py', OUT)


def add(name, gt, dets, iou_type):
    E, stats = golden.add(name, gt, dets, iou_type, 'slice', None, thresholds=False)
    print('%-28s %s AP=%.4f AR1=%.4f AR100=%.4f dets=%d' % (name, iou_type, stats[0], stats[6], stats[8], len(dets)))


def rect(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


# 1. negative widths / heights. Image 1: the top-scoring detection has a negative width (area
#    < 0: ignored, but it fills the maxDets=1 slot, so AR1 is 0 for that category); one with both
#    negative (area > 0: a false positive); a gt box with a negative height (never matched, its
#    `area` field decides its area range).
neg_gt = {
    'images': [{'id': 1, 'height': 60, 'width': 80}, {'id': 2, 'height': 50, 'width': 50}],
    'categories': [{'id': 1, 'name': 'a'}, {'id': 4, 'name': 'b'}],
    'annotations': [
        {'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [5, 5, 20, 20], 'area': 400.0, 'iscrowd': 0, 'segmentation': rect(5, 5, 20, 20)},
        {'id': 2, 'image_id': 1, 'category_id': 4, 'bbox': [40, 10, 30, -20], 'area': 600.0, 'iscrowd': 0, 'segmentation': rect(40, 10, 30, 20)},
        {'id': 3, 'image_id': 2, 'category_id': 1, 'bbox': [10, 10, 30, 30], 'area': 900.0, 'iscrowd': 0, 'segmentation': rect(10, 10, 30, 30)},
        {'id': 4, 'image_id': 2, 'category_id': 4, 'bbox': [0, 0, 12, 12], 'area': 144.0, 'iscrowd': 1, 'segmentation': rect(0, 0, 12, 12)},
    ]}
neg_dets = [
    {'image_id': 1, 'category_id': 1, 'bbox': [25, 5, -20, 20], 'score': 0.95},    # the gt box, negative width
    {'image_id': 1, 'category_id': 1, 'bbox': [5, 5, 20, 19], 'score': 0.9},
    {'image_id': 1, 'category_id': 1, 'bbox': [25, 25, -20, -20], 'score': 0.8},   # both negative: area 400
    {'image_id': 1, 'category_id': 4, 'bbox': [40, 10, 30, 20], 'score': 0.7},
    {'image_id': 1, 'category_id': 4, 'bbox': [40, 30, 30, -20], 'score': 0.75},   # the gt's own negative box
    {'image_id': 2, 'category_id': 1, 'bbox': [10, 40, 30, -30], 'score': 0.6},
    {'image_id': 2, 'category_id': 1, 'bbox': [11, 10, 30, 30], 'score': 0.5},
    {'image_id': 2, 'category_id': 4, 'bbox': [2, 2, -5, 5], 'score': 0.9},        # on the crowd
    {'image_id': 2, 'category_id': 4, 'bbox': [2, 2, 5, 5], 'score': 0.4},
]
# random negative boxes among ordinary ones
for j in range(40):
    im = neg_gt['images'][j % 2]
    w, h = float(np.round(rng.uniform(1, 30), 2)), float(np.round(rng.uniform(1, 30), 2))
    x, y = float(np.round(rng.uniform(-5, im['width']), 2)), float(np.round(rng.uniform(-5, im['height']), 2))
    s = rng.randint(4)
    neg_dets.append({'image_id': im['id'], 'category_id': [1, 4][rng.randint(2)],
                     'bbox': [x, y, -w if s & 1 else w, -h if s & 2 else h], 'score': float(np.round(rng.uniform(), 2))})
add('negative_boxes_bbox', neg_gt, neg_dets, 'bbox')
# segm: results without segmentation are their box as a polygon (loadRes), negative or not
add('negative_boxes_segm', neg_gt, neg_dets, 'segm')

# 2. loadRes' mask branch (the first result has no usable bbox) with `bbox: []` on the results
mb_dets = []
for d in neg_dets[:20]:
    im = next(i for i in neg_gt['images'] if i['id'] == d['image_id'])
    x, y, w, h = d['bbox']
    x, w = (x + w, -w) if w < 0 else (x, w)
    y, h = (y + h, -h) if h < 0 else (y, h)
    r = M.merge(M.frPyObjects(rect(x, y, w * 0.9, h * 1.1), im['height'], im['width']))
    mb_dets.append({'image_id': d['image_id'], 'category_id': d['category_id'], 'score': d['score'],
                    'bbox': [], 'segmentation': rle_json(r)})
del mb_dets[3]['bbox']
add('mask_branch_empty_bbox_segm', neg_gt, mb_dets, 'segm')

# 3. ground truth with annotations of images / categories the file does not list (one of them
#    without bbox, area or segmentation: pycocotools never reads it)
ul_gt = copy.deepcopy(neg_gt)
ul_gt['annotations'][1]['bbox'] = [40, 10, 30, 20]
ul_gt['annotations'] += [
    {'id': 10, 'image_id': 1, 'category_id': 99, 'bbox': [5, 5, 20, 20], 'area': 400.0, 'iscrowd': 0, 'segmentation': rect(5, 5, 20, 20)},
    {'id': 11, 'image_id': 1, 'category_id': 99, 'bbox': [5, 5, 20, 20], 'area': 400.0, 'iscrowd': 0, 'segmentation': rect(5, 5, 20, 20)},
    {'id': 12, 'image_id': 77, 'category_id': 1, 'bbox': [40, 10, 30, 20], 'area': 600.0, 'iscrowd': 0, 'segmentation': rect(40, 10, 30, 20)},
    {'id': 13, 'image_id': 78, 'category_id': 1},
]
ul_dets = [d for d in neg_dets if d['bbox'][2] > 0 and d['bbox'][3] > 0]
ul_dets.append({'image_id': 1, 'category_id': 99, 'bbox': [5, 5, 20, 20], 'score': 0.99})
add('gt_unlisted_image_category_bbox', ul_gt, ul_dets, 'bbox')
add('gt_unlisted_image_category_segm', ul_gt, ul_dets, 'segm')

golden.write()
