"""What scripts/golden/coco_eval.py and coco_eval_edges.py share: running pycocotools' COCOeval on
a ground truth and results, and recording a case (its ground truth by key, the results, stats,
per-category stats, recall and precision) in the layout test/eval/golden.ts reads.

Needs pycocotools (cocodataset/cocoapi PythonAPI) on PYTHONPATH; with numpy >= 1.24,
cocoeval.py's `np.float` must read `np.float64` (same type).
"""
import contextlib
import copy
import io
import json
import os

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def rle_json(r):
    return {'size': [int(r['size'][0]), int(r['size'][1])], 'counts': r['counts'].decode('ascii')}


def make_coco(dataset):
    c = COCO()
    c.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c


def run(gt, dets, iou_type, img_ids=None):
    """COCOeval after evaluate/accumulate/summarize, its stats, and summarize() per category."""
    cgt = make_coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        if len(dets) == 0:
            # pycocotools' loadRes crashes on an empty list; an empty result COCO is what it means
            cdt = make_coco({'images': gt['images'], 'categories': gt['categories'], 'annotations': []})
        else:
            cdt = cgt.loadRes(copy.deepcopy(dets))
        E = COCOeval(cgt, cdt, iou_type)
        if img_ids is not None:
            E.params.imgIds = img_ids
        E.evaluate()
        E.accumulate()
        E.summarize()
        stats = E.stats.tolist()
        per = {}
        full_p, full_r = E.eval['precision'], E.eval['recall']
        for k, cid in enumerate(E.params.catIds):
            E.eval['precision'] = full_p[:, :, k:k + 1]
            E.eval['recall'] = full_r[:, k:k + 1]
            E.summarize()
            per[str(cid)] = E.stats.tolist()
        E.eval['precision'], E.eval['recall'] = full_p, full_r
    return E, stats, per


class Golden:
    """The cases of one golden file, ground truths shared by identity."""

    def __init__(self, generator, out):
        self.generator, self.out = generator, out
        self.cases, self.gts = [], {}

    def add(self, name, gt, dets, iou_type, precision='slice', img_ids=None, thresholds=True):
        """precision: 'slice' ([:, :, :, all, 100]), 'full', or 'scores' (full, and the scores);
        thresholds: also record iouThrs and recThrs. Returns (COCOeval, stats)."""
        E, stats, per = run(gt, dets, iou_type, img_ids)
        p = E.eval['precision']
        key = next((k for k, g in self.gts.items() if g is gt), None)
        if key is None:
            key = 'gt%d' % len(self.gts)
            self.gts[key] = gt
        expected = {'stats': stats, 'perCategory': per, 'counts': E.eval['counts'],
                    'recall': E.eval['recall'].reshape(-1).tolist()}
        if thresholds:
            expected['iouThrs'] = E.params.iouThrs.tolist()
            expected['recThrs'] = E.params.recThrs.tolist()
        if precision == 'slice':
            expected['precisionAll100'] = p[:, :, :, 0, 2].reshape(-1).tolist()
        else:
            expected['precision'] = p.reshape(-1).tolist()
            if precision == 'scores':
                expected['scores'] = E.eval['scores'].reshape(-1).tolist()
        self.cases.append({'name': name, 'iouType': iou_type, 'gt': key, 'dets': dets, 'imgIds': img_ids,
                           'expected': expected})
        return E, stats

    def write(self):
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        with open(self.out, 'w') as f:
            json.dump({'generator': self.generator, 'gts': self.gts, 'cases': self.cases}, f, separators=(',', ':'))
        print('wrote', os.path.normpath(self.out), os.path.getsize(self.out) // 1024, 'KiB')
