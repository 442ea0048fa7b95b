#!/usr/bin/python3
"""Golden numbers for mtpd's cascade RoI heads (models.CascadeRoIHeads, used by cascade_mask_rcnn).

This is an INDEPENDENT reimplementation in Python on torch + torchvision.ops (roi_align,
batched_nms, box_iou), written from the Cascade R-CNN paper (Cai & Vasconcelos, CVPR 2018) and the
semantics of mmdetection 2.x's Cascade Mask R-CNN, not mmdetection's own code: mmdetection's full
stack (its registries, mmcv ops and data structures) was not run. The mmdetection sources read for
the semantics (open-mmlab/mmdetection, path @ commit):

  mmdet/models/roi_heads/cascade_roi_head.py            (late 2.x; CascadeRoIHead.forward_train,
                                                         simple_test: refine_bboxes with the
                                                         background rows' argmax class, logits
                                                         averaged over stages then softmax, masks of
                                                         every stage's head averaged)
  configs/_base_/models/cascade_mask_rcnn_r50_fpn.py     @ 902a6ed8785d36987c66aabe7b3213a4813ebc0c
                                                         (stages 0.5/0.6/0.7, target_stds, loss
                                                         weights 1/0.5/0.25, reg_class_agnostic,
                                                         SmoothL1 beta 1.0, RoIAlign sampling 0,
                                                         one FCNMaskHead per stage, test_cfg)
  mmdet/core/mask/mask_target.py                         @ 2eb06a6fc252a1791929393227dde972f6af73f4
                                                         (positives clipped to the mask, RoIAlign
                                                         aligned, adaptive grid, binarized)
  mmdet/models/roi_heads/bbox_heads/bbox_head.py         @ ca2f67f704386229f9fa1e40fa65dda15876c355
  mmdet/models/roi_heads/bbox_heads/convfc_bbox_head.py  @ ca2f67f704386229f9fa1e40fa65dda15876c355
  mmdet/core/bbox/coder/delta_xywh_bbox_coder.py         @ 7563ff04d4a5403a490e3dda18b890499ef1483a

What it follows of mmdetection: SingleRoIExtractor level mapping floor(log2(sqrt(wh) / 56 + 1e-6))
with RoIAlign(aligned=True, sampling_ratio=0); Shared2FCBBoxHead; DeltaXYWHBBoxCoder (stds,
dw/dh clamped to +-log(1000/16) on both sides, boxes clipped to the image); MaxIoUAssigner
(pos = neg = min_pos IoU thr, no low-quality matches); RandomSampler(512, 0.25, gt added first);
the inputs are sized so that every positive and negative is kept (no random draw), which makes the
losses independent of the sampler's random stream; CrossEntropyLoss (mean over the sampled rois),
SmoothL1Loss(beta=1) summed over the positives / number sampled; mask targets as mask_target
(binarized at 0.5), per-class sigmoid BCE (mean); multiclass_nms (score_thr 0.05, NMS 0.5, 100).
mmdetection's class layout (background last) is converted to mtpd's (background first) on save.

Writes (one image, 96 x 128, reduced width: FPN 16 channels, representation 64, mask 16):
  <out>/cascade_heads.weights.safetensors   mtpd names (box_head.{s}.fc6 ..., mask_head.{s}.{j}.0 ...)
  <out>/cascade_heads.mmdet.safetensors     the same tensors in mmdetection's names (roi_head.*)
  <out>/cascade_heads.io.safetensors        inputs (p2..p5, proposals, image_size, gt_boxes,
                                            gt_labels (0..C-1), gt_masks) and outputs:
                                            s{s}.rois / s{s}.class_logits / s{s}.box_deltas (eval),
                                            det.boxes / det.scores / det.labels / det.masks (D,1,28,28),
                                            loss.s{s}.loss_classifier / loss_box_reg / loss_mask
                                            __metadata__.config: the models.CascadeRoIHeads options

  /usr/bin/python3 scripts/golden/cascade_mask_rcnn.py --out test/fixtures/cascade
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, roi_align

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_retinanet import save_safetensors  # noqa: E402

NUM_CLASSES = 3  # real classes; mmdetection's fc_cls has NUM_CLASSES + 1 outputs, background last
CHANNELS, REP, MASK = 16, 64, 16  # 256, 1024, 256 at width_mult 0.0625
STDS = [(0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067)]
IOUS = [0.5, 0.6, 0.7]
LOSS_WEIGHTS = [1.0, 0.5, 0.25]
H, W = 96, 128
CONFIG = {"backbone": "resnet18", "width_mult": 0.0625, "num_classes": NUM_CLASSES}


class BBoxHead(nn.Module):  # Shared2FCBBoxHead, class-agnostic regression
    def __init__(self):
        super().__init__()
        self.shared_fcs = nn.ModuleList([nn.Linear(CHANNELS * 49, REP), nn.Linear(REP, REP)])
        self.fc_cls = nn.Linear(REP, NUM_CLASSES + 1)
        self.fc_reg = nn.Linear(REP, 4)

    def forward(self, x):
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class MaskHead(nn.Module):  # FCNMaskHead: 4 convs, deconv, 1x1 logits (no background)
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(CHANNELS if i == 0 else MASK, MASK, 3, padding=1) for i in range(4)])
        self.upsample = nn.ConvTranspose2d(MASK, MASK, 2, stride=2)
        self.conv_logits = nn.Conv2d(MASK, NUM_CLASSES, 1)

    def forward(self, x):
        for c in self.convs:
            x = F.relu(c(x))
        return self.conv_logits(F.relu(self.upsample(x)))


def extract(feats, boxes, out):
    """SingleRoIExtractor on one image: boxes (K, 4) -> (K, C, out, out)."""
    rois = torch.cat([boxes.new_zeros(boxes.size(0), 1), boxes], 1)
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    lvl = torch.floor(torch.log2(scale / 56 + 1e-6)).clamp(min=0, max=len(feats) - 1).long()
    res = feats[0].new_zeros(boxes.size(0), feats[0].size(1), out, out)
    for i, f in enumerate(feats):
        inds = (lvl == i).nonzero().squeeze(1)
        if inds.numel():
            res[inds] = roi_align(f, rois[inds], out, 1.0 / (4 * 2 ** i), 0, True)
    return res


def encode(p, g, stds):
    px, py = (p[:, 0] + p[:, 2]) * 0.5, (p[:, 1] + p[:, 3]) * 0.5
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    gx, gy = (g[:, 0] + g[:, 2]) * 0.5, (g[:, 1] + g[:, 3]) * 0.5
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    d = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], -1)
    return d / d.new_tensor(stds)


def decode(rois, deltas, stds):
    d = deltas * deltas.new_tensor(stds)
    max_ratio = abs(math.log(16 / 1000))
    pxy = (rois[:, :2] + rois[:, 2:]) * 0.5
    pwh = rois[:, 2:] - rois[:, :2]
    gxy = pxy + pwh * d[:, :2]
    gwh = pwh * d[:, 2:].clamp(min=-max_ratio, max=max_ratio).exp()
    b = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], -1)
    b[:, 0::2] = b[:, 0::2].clamp(min=0, max=W)
    b[:, 1::2] = b[:, 1::2].clamp(min=0, max=H)
    return b


def mask_targets(boxes, gt_masks, inds):
    b = boxes.clone()
    b[:, 0::2] = b[:, 0::2].clamp(0, gt_masks.size(2))
    b[:, 1::2] = b[:, 1::2].clamp(0, gt_masks.size(1))
    rois = torch.cat([torch.arange(b.size(0), dtype=b.dtype)[:, None], b], 1)
    m = gt_masks.index_select(0, inds).float()[:, None]
    return (roi_align(m, rois, 28, 1.0, 0, True).squeeze(1) >= 0.5).float()


def forward_train(heads, mheads, feats, proposals, gt, gt_labels, gt_masks):
    losses, counts = {}, []
    for s in range(3):
        boxes = torch.cat([gt, proposals])  # RandomSampler(add_gt_as_proposals): gt first
        is_gt = torch.cat([torch.ones(gt.size(0), dtype=torch.bool), torch.zeros(proposals.size(0), dtype=torch.bool)])
        ov = box_iou(gt, boxes)
        max_ov, arg = ov.max(0)
        assigned = torch.full((boxes.size(0),), -1, dtype=torch.long)
        assigned[(max_ov >= 0) & (max_ov < IOUS[s])] = 0
        pos_mask = max_ov >= IOUS[s]
        assigned[pos_mask] = arg[pos_mask] + 1
        assigned[: gt.size(0)] = torch.arange(1, gt.size(0) + 1)  # add_gt_
        pos = (assigned > 0).nonzero().squeeze(1)
        neg = (assigned == 0).nonzero().squeeze(1)
        assert pos.numel() <= 128 and neg.numel() <= 512 - pos.numel(), "inputs must not need random sampling"
        counts.append((pos.numel(), neg.numel()))
        sampled = torch.cat([boxes[pos], boxes[neg]])
        pos_gt_inds = assigned[pos] - 1
        labels = torch.full((sampled.size(0),), NUM_CLASSES, dtype=torch.long)
        labels[: pos.numel()] = gt_labels[pos_gt_inds]
        cls, reg = heads[s](extract(feats, sampled, 7))
        lw = LOSS_WEIGHTS[s]
        losses[f"s{s}.loss_classifier"] = F.cross_entropy(cls, labels) * lw
        targets = encode(sampled[: pos.numel()], gt[pos_gt_inds], STDS[s])
        losses[f"s{s}.loss_box_reg"] = (
            F.smooth_l1_loss(reg[: pos.numel()], targets, beta=1.0, reduction="sum") / sampled.size(0) * lw)
        mt = mask_targets(sampled[: pos.numel()], gt_masks, pos_gt_inds)
        mp = mheads[s](extract(feats, sampled[: pos.numel()], 14))
        picked = mp[torch.arange(pos.numel()), gt_labels[pos_gt_inds]]
        losses[f"s{s}.loss_mask"] = F.binary_cross_entropy_with_logits(picked, mt) * lw
        if s < 2:
            with torch.no_grad():
                refined = decode(sampled, reg, STDS[s])  # class-agnostic: the label does not pick
                keep = torch.ones(sampled.size(0), dtype=torch.bool)
                keep[: pos.numel()] = ~is_gt[pos]
                proposals = refined[keep]
    return losses, counts


@torch.no_grad()
def simple_test(heads, mheads, feats, proposals):
    rois, ms, stages = proposals, [], []
    for s in range(3):
        cls, reg = heads[s](extract(feats, rois, 7))
        stages.append((rois, cls, reg))
        ms.append(cls)
        if s < 2:
            rois = decode(rois, reg, STDS[s])
    scores = F.softmax(sum(ms) / 3.0, dim=-1)
    boxes = decode(rois, reg, STDS[2])
    n = scores.size(0)
    b = boxes[:, None].expand(n, NUM_CLASSES, 4).reshape(-1, 4)
    sc = scores[:, :-1].reshape(-1)
    lab = torch.arange(NUM_CLASSES).view(1, -1).expand(n, NUM_CLASSES).reshape(-1)
    valid = (sc > 0.05).nonzero().squeeze(1)
    b, sc, lab = b[valid], sc[valid], lab[valid]
    keep = batched_nms(b, sc, lab, 0.5)[:100]
    b, sc, lab = b[keep], sc[keep], lab[keep]
    probs = [m(extract(feats, b, 14)).sigmoid() for m in mheads]
    merged = sum(probs) / len(probs)
    masks = merged[torch.arange(b.size(0)), lab][:, None]
    return stages, (b, sc, lab, masks)


def to_mtpd_cls(t):
    """mmdetection's class rows (classes..., background) -> mtpd's (background, classes...)."""
    return torch.cat([t[-1:], t[:-1]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    heads = nn.ModuleList([BBoxHead() for _ in range(3)])
    mheads = nn.ModuleList([MaskHead() for _ in range(3)])
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(1, CHANNELS, H // s, W // s, generator=g) for s in (4, 8, 16, 32)]
    gt = torch.tensor([[10.0, 12.0, 60.0, 70.0], [50.0, 30.0, 120.0, 90.0], [70.0, 5.0, 100.0, 40.0]])
    gt_labels = torch.tensor([0, 2, 1])
    yy, xx = torch.meshgrid(torch.arange(H).float() + 0.5, torch.arange(W).float() + 0.5, indexing="ij")
    gt_masks = torch.stack([(((xx - (b[0] + b[2]) / 2) / ((b[2] - b[0]) / 2)) ** 2 +
                             ((yy - (b[1] + b[3]) / 2) / ((b[3] - b[1]) / 2)) ** 2 <= 1).to(torch.uint8) for b in gt])
    props = []
    for b in gt:  # jittered copies of every gt box, so all three stages have positives
        wh = (b[2:] - b[:2]).repeat(2)
        props.append(b + (torch.rand(12, 4, generator=g) - 0.5) * 0.3 * wh)
    xy = torch.rand(30, 2, generator=g) * torch.tensor([W - 20.0, H - 20.0])
    size = 8 + torch.rand(30, 2, generator=g) * 56
    props.append(torch.cat([xy, xy + size], 1))
    proposals = torch.cat(props)
    proposals[:, 0::2] = proposals[:, 0::2].clamp(0, W)
    proposals[:, 1::2] = proposals[:, 1::2].clamp(0, H)

    losses, counts = forward_train(heads, mheads, feats, proposals, gt, gt_labels, gt_masks)
    stages, (db, ds, dl, dm) = simple_test(heads, mheads, feats, proposals)
    print("positives/negatives per stage:", counts, "detections:", db.size(0))
    print({k: round(v.item(), 6) for k, v in losses.items()})

    weights, mmdet = {}, {}
    for s in range(3):
        h = heads[s]
        pairs = [(f"box_head.{s}.fc6", f"roi_head.bbox_head.{s}.shared_fcs.0", h.shared_fcs[0], False),
                 (f"box_head.{s}.fc7", f"roi_head.bbox_head.{s}.shared_fcs.1", h.shared_fcs[1], False),
                 (f"box_predictor.{s}.cls_score", f"roi_head.bbox_head.{s}.fc_cls", h.fc_cls, True),
                 (f"box_predictor.{s}.bbox_pred", f"roi_head.bbox_head.{s}.fc_reg", h.fc_reg, False)]
        m = mheads[s]
        pairs += [(f"mask_head.{s}.{j}.0", f"roi_head.mask_head.{s}.convs.{j}.conv", m.convs[j], False) for j in range(4)]
        pairs += [(f"mask_predictor.{s}.conv5_mask", f"roi_head.mask_head.{s}.upsample", m.upsample, False),
                  (f"mask_predictor.{s}.mask_fcn_logits", f"roi_head.mask_head.{s}.conv_logits", m.conv_logits, False)]
        for ours, theirs, mod, cls in pairs:
            for t in ("weight", "bias"):
                v = getattr(mod, t).detach()
                mmdet[f"{theirs}.{t}"] = v
                weights[f"{ours}.{t}"] = to_mtpd_cls(v) if cls else v
    io = {"p2": feats[0], "p3": feats[1], "p4": feats[2], "p5": feats[3], "proposals": proposals,
          "image_size": torch.tensor([H, W], dtype=torch.int64), "gt_boxes": gt, "gt_labels": gt_labels,
          "gt_masks": gt_masks}
    for s, (r, c, d) in enumerate(stages):
        io[f"s{s}.rois"], io[f"s{s}.class_logits"], io[f"s{s}.box_deltas"] = r, to_mtpd_cls(c.t()).t(), d
    io.update({"det.boxes": db, "det.scores": ds, "det.labels": dl, "det.masks": dm})
    for k, v in losses.items():
        io[f"loss.{k}"] = v.detach().reshape(1)
    os.makedirs(args.out, exist_ok=True)
    save_safetensors(os.path.join(args.out, "cascade_heads.weights.safetensors"), weights)
    save_safetensors(os.path.join(args.out, "cascade_heads.mmdet.safetensors"), mmdet)
    save_safetensors(os.path.join(args.out, "cascade_heads.io.safetensors"), io, {"config": json.dumps(CONFIG)})


if __name__ == "__main__":
    main()
