#!/usr/bin/python3
"""Golden numbers for COCO label mappings: a torchvision COCO-layout RetinaNet (91 outputs indexed
by COCO category id; small width, seeded weights) on a COCO-format dataset whose categories are
a renumbered subset of COCO's (plus one COCO does not have), scored with pycocotools.

  PYTHONPATH=<cocoapi>/PythonAPI:<shims> /usr/bin/python3 scripts/golden/coco_labels.py

(<cocoapi>: cocodataset/cocoapi at 8c9bcc3, `python3 setup.py build_ext --inplace` in PythonAPI,
np.float -> np.float64 in cocoeval.py; pycocotools/coco.py imports matplotlib only for showAnns, so
<shims> may hold an empty stand-in `matplotlib` package with pyplot, collections.PatchCollection
and patches.Polygon.)

Writes test/fixtures/coco/labels/: images/*.png, instances.json (ground truth made from the
model's own detections of the dataset's categories, jittered, plus boxes it does not find),
weights.safetensors (torchvision's names) and golden.json with
  - detections: torchvision's own predictions per image (boxes xyxy, scores, labels = COCO ids;
    at most 100 per image)
  - mapped: pycocotools' stats when each label is mapped to the dataset's category of the same
    name (the model's real AP on this dataset)
  - raw: pycocotools' stats when the labels are taken as the dataset's category ids (the wrong
    mapping), with the counts of detections whose category the dataset does not list (ignored)
"""
import contextlib
import copy
import importlib.util
import io
import json
import os

import torch
import torchvision
from torchvision.io import write_png
from torchvision.models._meta import _COCO_CATEGORIES
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'test', 'fixtures', 'coco', 'labels')
spec_ = importlib.util.spec_from_file_location('tvr', os.path.join(HERE, 'torchvision_retinanet.py'))
tvr = importlib.util.module_from_spec(spec_)
spec_.loader.exec_module(tvr)

SPEC = dict(backbone='resnet18', width_mult=0.0625, num_classes=91, seed=21, min_size=96, max_size=128)
SIZES = [(96, 128), (112, 84), (80, 120), (128, 96)]
# renumbered: id 1 is "dog" here, "person" in COCO; "unicorn" is no COCO category
CATEGORIES = [
    {'id': 1, 'name': 'dog'}, {'id': 2, 'name': 'car'}, {'id': 3, 'name': 'person'},
    {'id': 4, 'name': 'tv'}, {'id': 5, 'name': 'toothbrush'}, {'id': 6, 'name': 'unicorn'},
]


def coco_eval(gt, dets):
    cgt = COCO()
    cgt.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        cgt.createIndex()
        cdt = cgt.loadRes(copy.deepcopy(dets))
        E = COCOeval(cgt, cdt, 'bbox')
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E.stats.tolist()


def main():
    torch.set_num_threads(1)
    os.makedirs(os.path.join(OUT, 'images'), exist_ok=True)
    model = tvr.build(SPEC)
    # lift the scores of the dataset's classes a little, so the model finds them
    by_name = {n: i for i, n in enumerate(_COCO_CATEGORIES)}
    with torch.no_grad():
        for c in CATEGORIES:
            if c['name'] in by_name:
                model.head.classification_head.cls_logits.bias.view(9, 91)[:, by_name[c['name']]] += 1.0
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.detections_per_img = 100
    model.eval()
    g = torch.Generator().manual_seed(7)
    images, files, tensors = [], [], []
    for i, (h, w) in enumerate(SIZES):
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
        base = 0.5 * torch.rand(3, h, w, generator=g) + 0.25 * (1 + torch.sin((6 + i) * xx + 3 * yy))[None]
        u8 = (base.clamp(0, 1) * 255).round().to(torch.uint8)
        f = f'img{i}.png'
        write_png(u8, os.path.join(OUT, 'images', f))
        files.append(f)
        # what mtpd's loader gives: u8 * (1/255) in double, stored as float32
        tensors.append((u8.double() * (1 / 255)).float())
        images.append({'id': 100 + i, 'file_name': f, 'height': h, 'width': w})
    with torch.no_grad():
        out = model(tensors)
    name_of = {i: n for i, n in enumerate(_COCO_CATEGORIES)}
    ds_id = {c['name']: c['id'] for c in CATEGORIES}
    anns, mapped, raw, dets = [], [], [], []
    aid = 1
    for img, d in zip(images, out):
        boxes, scores, labels = d['boxes'], d['scores'], d['labels']
        dets.append({'image_id': img['id'], 'boxes': boxes.flatten().tolist(), 'scores': scores.tolist(),
                     'labels': labels.tolist()})
        taken = 0
        for b, s, l in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            x1, y1, x2, y2 = b
            rec = {'image_id': img['id'], 'score': s, 'bbox': [x1, y1, x2 - x1, y2 - y1]}
            raw.append({**rec, 'category_id': int(l)})
            n = name_of[int(l)]
            if n in ds_id:
                mapped.append({**rec, 'category_id': ds_id[n]})
                if taken < 4 and (x2 - x1) > 4 and (y2 - y1) > 4:
                    taken += 1
                    j = (torch.rand(4, generator=g) - 0.5) * 0.1 * torch.tensor([x2 - x1, y2 - y1] * 2)
                    W, H = img['width'], img['height']
                    jb = [min(max(x1 + j[0].item(), 0.0), W), min(max(y1 + j[1].item(), 0.0), H),
                          min(max(x2 + j[2].item(), 0.0), W), min(max(y2 + j[3].item(), 0.0), H)]
                    anns.append({'id': aid, 'image_id': img['id'], 'category_id': ds_id[n],
                                 'bbox': [jb[0], jb[1], jb[2] - jb[0], jb[3] - jb[1]],
                                 'area': (jb[2] - jb[0]) * (jb[3] - jb[1]), 'iscrowd': 0})
                    aid += 1
        # objects the model misses, one of a category it cannot predict
        for cat in (6, 1 + aid % 5):
            x, y = float(torch.rand(1, generator=g)) * img['width'] / 2, float(torch.rand(1, generator=g)) * img['height'] / 2
            anns.append({'id': aid, 'image_id': img['id'], 'category_id': cat, 'bbox': [x, y, 20.0, 16.0],
                         'area': 320.0, 'iscrowd': 0})
            aid += 1
    gt = {'images': images, 'annotations': anns, 'categories': CATEGORIES}
    with open(os.path.join(OUT, 'instances.json'), 'w') as f:
        json.dump(gt, f)
    tvr.save_safetensors(os.path.join(OUT, 'weights.safetensors'), sd)
    ignored = {}
    for r in raw:
        if r['category_id'] not in ds_id.values():
            ignored[str(r['category_id'])] = ignored.get(str(r['category_id']), 0) + 1
    golden = {
        'script': 'scripts/golden/coco_labels.py', 'torchvision': torchvision.__version__,
        'config': tvr.mtpd_config(SPEC), 'detections': dets,
        'mapped': {'stats': coco_eval(gt, mapped), 'count': len(mapped)},
        'raw': {'stats': coco_eval(gt, raw), 'count': len(raw),
                'ignored': dict(sorted(ignored.items(), key=lambda kv: int(kv[0])))},
    }
    with open(os.path.join(OUT, 'golden.json'), 'w') as f:
        json.dump(golden, f)
    print('annotations', len(anns), 'mapped AP', golden['mapped']['stats'][0], 'raw AP', golden['raw']['stats'][0],
          'detections', [len(d['scores']) for d in dets])


if __name__ == '__main__':
    main()
