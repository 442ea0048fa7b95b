#!/usr/bin/python3
"""Golden numbers for mtpd's Mask R-CNN, from torchvision 0.14 (Debian's python3-torchvision).

Builds reduced-width torchvision MaskRCNN models (the layer types and names of
maskrcnn_resnet50_fpn: ResNet body with FrozenBatchNorm2d, FPN over layer1..layer4 with
LastLevelMaxPool, RPNHead, TwoMLPHead + FastRCNNPredictor, MaskRCNNHeads + MaskRCNNPredictor) with
a fixed seed, perturbs them so every path carries signal, and writes per model. The "_v2" specs
build maskrcnn_resnet50_fpn_v2's / fasterrcnn_resnet50_fpn_v2's layout the same way: BatchNorm2d in
the body and in the FPN (norm_layer=nn.BatchNorm2d), RPNHead(conv_depth=2), FastRCNNConvFCHead (4
conv + BatchNorm2d, 1 FC), MaskRCNNHeads with BatchNorm2d; Faster R-CNN without the mask branch.

  <out>/<name>.weights.safetensors   the state dict, torchvision's names
  <out>/<name>.io.safetensors        images, targets (boxes, labels, masks), torchvision's outputs
                                     (__metadata__.arch: the mtpd arch it is built as):
                                     features.p2..p6 (eval), det.<i>.{boxes,scores,labels,masks}
                                     (eval; masks pasted into the image, probabilities),
                                     rpn.<i>.boxes (eval proposals), loss.* (train mode, after
                                     torch.manual_seed(loss_seed): the samplers' draws)
                                     __metadata__.config = the mtpd "mask_rcnn" options (JSON),
                                     __metadata__.loss_seed

Labels in the files are mtpd's (torchvision's minus 1). Checked by test/models/parity.test.ts.

  /usr/bin/python3 scripts/golden/torchvision_maskrcnn.py --out test/fixtures/models [--only a,b]
"""
import argparse
import json
import math
import os
import sys
from collections import OrderedDict

import torch
from torch import nn
import torchvision
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_retinanet import ARCHS, NarrowResNet, save_safetensors, scaled  # noqa: E402

assert torchvision.__version__.startswith("0.14"), f"expected torchvision 0.14, got {torchvision.__version__}"


def backbone(arch, width_mult, trainable_layers=3, v2=False):
    # v1: FrozenBatchNorm2d (the pretrained-backbone rule); v2: resnet50() with its BatchNorm2d and
    # _resnet_fpn_extractor(..., norm_layer=nn.BatchNorm2d) for the FPN
    block, layers, groups, wpg = ARCHS[arch]
    body = NarrowResNet(block, layers, width_mult, groups, wpg, nn.BatchNorm2d if v2 else FrozenBatchNorm2d)
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    for name, p in body.named_parameters():
        if all(not name.startswith(l) for l in layers_to_train):
            p.requires_grad_(False)
    exp = block.expansion
    in_list = [scaled(c, width_mult) * exp for c in (64, 128, 256, 512)]
    out = scaled(256, width_mult)
    return BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}, in_list, out,
                           extra_blocks=LastLevelMaxPool(), norm_layer=nn.BatchNorm2d if v2 else None)


def build(spec):
    torch.manual_seed(spec["seed"])
    wm = spec["width_mult"]
    v2 = spec.get("v2", False)
    bb = backbone(spec["backbone"], wm, v2=v2)
    c = bb.out_channels
    rep, mc = scaled(1024, wm), scaled(256, wm)
    k = spec["num_classes"] + 1
    if v2:
        # maskrcnn_resnet50_fpn_v2 / fasterrcnn_resnet50_fpn_v2 at reduced width
        bn = nn.BatchNorm2d
        heads = dict(rpn_head=RPNHead(c, 3, conv_depth=2),
                     box_head=FastRCNNConvFCHead((c, 7, 7), [mc] * 4, [rep], norm_layer=bn),
                     box_predictor=FastRCNNPredictor(rep, k))
        if spec.get("masks", True):
            model = MaskRCNN(bb, num_classes=None, min_size=spec["min_size"], max_size=spec["max_size"],
                             mask_head=MaskRCNNHeads(c, [mc] * 4, 1, norm_layer=bn),
                             mask_predictor=MaskRCNNPredictor(mc, mc, k), **heads, **spec.get("tv", {}))
        else:
            model = FasterRCNN(bb, num_classes=None, min_size=spec["min_size"], max_size=spec["max_size"], **heads,
                               **spec.get("tv", {}))
        perturb(model, spec["seed"])
        return model
    model = MaskRCNN(
        bb, num_classes=None, min_size=spec["min_size"], max_size=spec["max_size"],
        box_head=TwoMLPHead(c * 7 * 7, rep), box_predictor=FastRCNNPredictor(rep, k),
        mask_head=MaskRCNNHeads(c, [mc] * 4, 1), mask_predictor=MaskRCNNPredictor(mc, mc, k),
        **spec.get("tv", {}))
    perturb(model, spec["seed"])
    return model


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FrozenBatchNorm2d):
                n = m.weight.numel()
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            elif isinstance(m, nn.BatchNorm2d):  # the _v2 layouts (v1 models have none)
                n = m.weight.numel()
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
        head = model.rpn.head
        s = math.sqrt(16.0 / head.cls_logits.in_channels)
        # objectness spread out and deltas that move the anchors
        for block in head.conv:  # v1: conv.0; v2 (conv_depth 2): conv.0, conv.1
            block[0].weight.normal_(0, 0.1 * s, generator=g)
        head.cls_logits.weight.normal_(0, 0.3 * s, generator=g)
        head.cls_logits.bias.normal_(0, 0.5, generator=g)
        head.bbox_pred.weight.normal_(0, 0.05 * s, generator=g)
        # class scores spread over 0..1 so thresholds, per-class NMS and the top-n all act
        bp = model.roi_heads.box_predictor
        bp.cls_score.weight.normal_(0, 0.3, generator=g)
        bp.cls_score.bias.normal_(0, 1.0, generator=g)
        bp.bbox_pred.weight.normal_(0, 0.02, generator=g)
        mp = model.roi_heads.mask_predictor
        if mp is not None:
            mp.mask_fcn_logits.bias.normal_(0, 0.5, generator=g)


def images_and_targets(seed, sizes, num_classes):
    g = torch.Generator().manual_seed(seed + 2)
    images, targets = [], []
    for (h, w) in sizes:
        img = torch.rand(3, h, w, generator=g)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        img = (0.5 * img + 0.25 * (1 + torch.sin(6 * xx + 3 * yy))[None]).clamp(0, 1)
        k = 3
        x1 = torch.rand(k, generator=g) * w * 0.5
        y1 = torch.rand(k, generator=g) * h * 0.5
        bw = 12 + torch.rand(k, generator=g) * w * 0.45
        bh = 12 + torch.rand(k, generator=g) * h * 0.45
        boxes = torch.stack([x1, y1, (x1 + bw).clamp(max=w), (y1 + bh).clamp(max=h)], 1)
        labels = torch.randint(1, num_classes + 1, (k,), generator=g)
        # an ellipse inside each box
        masks = torch.zeros(k, h, w, dtype=torch.uint8)
        for j in range(k):
            cx, cy = (boxes[j, 0] + boxes[j, 2]) / 2, (boxes[j, 1] + boxes[j, 3]) / 2
            rx, ry = (boxes[j, 2] - boxes[j, 0]) / 2, (boxes[j, 3] - boxes[j, 1]) / 2
            inside = ((xx * (w - 1) + 0.5 - cx) / rx) ** 2 + ((yy * (h - 1) + 0.5 - cy) / ry) ** 2 <= 1
            masks[j] = inside.to(torch.uint8)
        images.append(img)
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
    return images, targets


def mtpd_config(spec):
    cfg = {k: spec[k] for k in ("backbone", "num_classes", "min_size", "max_size", "width_mult")}
    cfg.update(spec.get("tv", {}))
    return cfg


def mtpd_arch(spec):
    """v1 fixtures: the native name; v2: the builder name, whose layout options mtpd fills in."""
    if not spec.get("v2"):
        return "mask_rcnn"
    return f"{'maskrcnn' if spec.get('masks', True) else 'fasterrcnn'}_{spec['backbone']}_fpn_v2"


def run(spec, out_dir):
    model = build(spec)
    images, targets = images_and_targets(spec["seed"], spec["image_sizes"], spec["num_classes"])
    io = OrderedDict()
    for i, (img, t) in enumerate(zip(images, targets)):
        io[f"image.{i}"] = img
        io[f"target.{i}.boxes"] = t["boxes"]
        io[f"target.{i}.labels"] = t["labels"] - 1
        if spec.get("masks", True):
            io[f"target.{i}.masks"] = t["masks"]
    if not spec.get("masks", True):
        targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    sd = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        il, _ = model.transform(images)
        feats = model.backbone(il.tensors)
        for name, f in zip(["p2", "p3", "p4", "p5", "p6"], feats.values()):
            io[f"features.{name}"] = f
        props, _ = model.rpn(il, feats)
        for i, p in enumerate(props):
            io[f"rpn.{i}.boxes"] = p
        dets = model(images)
        for i, d in enumerate(dets):
            io[f"det.{i}.boxes"] = d["boxes"]
            io[f"det.{i}.scores"] = d["scores"]
            io[f"det.{i}.labels"] = d["labels"] - 1
            if "masks" in d:
                io[f"det.{i}.masks"] = d["masks"]
    model.train()
    loss_seed = spec["seed"] + 100
    torch.manual_seed(loss_seed)
    losses = model(images, [dict(t) for t in targets])
    for k, v in losses.items():
        io[f"loss.{k}"] = v.detach()
    name = spec["name"]
    save_safetensors(os.path.join(out_dir, f"{name}.weights.safetensors"), sd)
    save_safetensors(os.path.join(out_dir, f"{name}.io.safetensors"), io,
                     {"config": json.dumps(mtpd_config(spec)), "arch": mtpd_arch(spec), "loss_seed": str(loss_seed),
                      "torchvision": torchvision.__version__, "torch": torch.__version__,
                      "script": "scripts/golden/torchvision_maskrcnn.py"})
    nd = [len(d["scores"]) for d in dets]
    print(f"{name}: {sum(v.numel() for v in sd.values())} state values, losses "
          f"{ {k: round(v.item(), 5) for k, v in losses.items()} }, proposals {[len(p) for p in props]}, "
          f"detections {nd}")


SMALL = [
    # no top-n cut in the RPN (every anchor a candidate): exact proposal sets
    dict(name="maskrcnn_resnet18_small", backbone="resnet18", width_mult=0.0625, num_classes=4, seed=21,
         min_size=64, max_size=96, image_sizes=[(60, 80), (72, 56)],
         tv=dict(rpn_pre_nms_top_n_test=5000, rpn_post_nms_top_n_test=5000, rpn_pre_nms_top_n_train=5000,
                 rpn_post_nms_top_n_train=5000, box_detections_per_img=12)),
    # torchvision's top-n cuts, scaled down to the small images
    dict(name="maskrcnn_resnet50_small", backbone="resnet50", width_mult=0.0625, num_classes=3, seed=22,
         min_size=64, max_size=96, image_sizes=[(64, 90), (80, 64)],
         tv=dict(rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150, rpn_pre_nms_top_n_train=400,
                 rpn_post_nms_top_n_train=200, box_batch_size_per_image=128, rpn_batch_size_per_image=64,
                 box_detections_per_img=10)),
    # the _v2 layouts (BatchNorm2d throughout, conv_depth 2 RPN, conv+FC box head), torchvision's cuts scaled down
    dict(name="maskrcnn_resnet50_v2_small", backbone="resnet50", width_mult=0.0625, num_classes=3, seed=23, v2=True,
         min_size=64, max_size=96, image_sizes=[(64, 90), (80, 64)],
         tv=dict(rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150, rpn_pre_nms_top_n_train=400,
                 rpn_post_nms_top_n_train=200, box_batch_size_per_image=128, rpn_batch_size_per_image=64,
                 box_detections_per_img=10)),
    dict(name="fasterrcnn_resnet50_v2_small", backbone="resnet50", width_mult=0.0625, num_classes=4, seed=24, v2=True,
         masks=False, min_size=64, max_size=96, image_sizes=[(60, 80), (72, 56)],
         tv=dict(rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150, rpn_pre_nms_top_n_train=400,
                 rpn_post_nms_top_n_train=200, box_batch_size_per_image=128, rpn_batch_size_per_image=64,
                 box_detections_per_img=12)),
    # a v2 layout over another backbone (the MaskRCNN class allows any; no builder ships one)
    dict(name="maskrcnn_resnet18_v2_small", backbone="resnet18", width_mult=0.125, num_classes=2, seed=25, v2=True,
         min_size=64, max_size=96, image_sizes=[(60, 80), (72, 56)],
         tv=dict(rpn_pre_nms_top_n_test=5000, rpn_post_nms_top_n_test=5000, rpn_pre_nms_top_n_train=5000,
                 rpn_post_nms_top_n_train=5000, box_detections_per_img=12)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=None, help="comma-separated model names")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    for s in SMALL:
        if a.only and s["name"] not in a.only.split(","):
            continue
        run(s, a.out)


if __name__ == "__main__":
    main()
