#!/usr/bin/python3
"""Checks a `mtpd export` .pth against torchvision 0.14 (Debian's python3-torchvision):

  /usr/bin/python3 scripts/golden/export_check.py OUT.pth ARCH NUM_CLASSES [--image IMG.png --min-size S --max-size M]

Loads the file with torch.load(weights_only=True), builds ARCH with torchvision's own builder
(retinanet_resnet50_fpn, retinanet_resnet50_fpn_v2, maskrcnn_resnet50_fpn(_v2),
fasterrcnn_resnet50_fpn(_v2); other ResNets as torchvision builds them:
_resnet_fpn_extractor(resnet, 3, [2, 3, 4], LastLevelP6P7(256, 256)) under RetinaNet), loads the
state dict with strict=True, and with --image prints torchvision's detections on it as one JSON
array of {bbox: [x, y, w, h], score, category_id} (what `mtpd predict --json` prints), so the
two can be compared. NUM_CLASSES is torchvision's: for the two-stage builders it counts the
background (mtpd's numClasses + 1).
"""
import argparse
import json

import torch
import torchvision
from torchvision.io import read_image
from torchvision.models import resnet
from torchvision.models.detection import (RetinaNet, fasterrcnn_resnet50_fpn, fasterrcnn_resnet50_fpn_v2,
                                          maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2, retinanet_resnet50_fpn,
                                          retinanet_resnet50_fpn_v2)
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7


TWO_STAGE = {f.__name__: f for f in (maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2, fasterrcnn_resnet50_fpn,
                                      fasterrcnn_resnet50_fpn_v2)}


def build(arch, num_classes, **kw):
    if arch in TWO_STAGE:
        return TWO_STAGE[arch](weights=None, weights_backbone=None, num_classes=num_classes, **kw)
    if arch == 'retinanet_resnet50_fpn':
        return retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes, **kw)
    if arch == 'retinanet_resnet50_fpn_v2':
        return retinanet_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes, **kw)
    name = arch[len('retinanet_'):-len('_fpn')]
    body = getattr(resnet, name)(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    return RetinaNet(backbone, num_classes, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('file')
    ap.add_argument('arch')
    ap.add_argument('num_classes', type=int)
    ap.add_argument('--image')
    ap.add_argument('--min-size', type=int, default=800)
    ap.add_argument('--max-size', type=int, default=1333)
    a = ap.parse_args()
    sd = torch.load(a.file, weights_only=True)
    model = build(a.arch, a.num_classes, min_size=a.min_size, max_size=a.max_size)
    r = model.load_state_dict(sd, strict=True)
    print(f'# {a.file}: {len(sd)} tensors load strictly into torchvision {torchvision.__version__} {a.arch} ({r})')
    if a.image:
        model.eval()
        img = read_image(a.image)[:3]
        with torch.no_grad():
            d = model([(img.double() * (1 / 255)).float()])[0]
        out = [{'bbox': [b[0], b[1], b[2] - b[0], b[3] - b[1]], 'score': s, 'category_id': l}
               for b, s, l in zip(d['boxes'].tolist(), d['scores'].tolist(), d['labels'].tolist())]
        print(json.dumps(out))


if __name__ == '__main__':
    main()
