#!/usr/bin/python3
"""Golden RoI-head outputs of mmdetection's Mask R-CNN and Cascade Mask R-CNN, from mmdetection's
own RoI-head code (mmdetection 2.x), on fixed FPN maps and fixed proposals (the RoI heads alone):

  mask_rcnn_r50_fpn          StandardRoIHead: SingleRoIExtractor (RoIAlign output 7, sampling_ratio 0,
                             featmap_strides 4..32), Shared2FCBBoxHead (DeltaXYWHBBoxCoder stds
                             0.1/0.1/0.2/0.2, reg_class_agnostic False), mask extractor RoIAlign 14,
                             FCNMaskHead (4 convs, deconv)
  cascade_mask_rcnn_r50_fpn  CascadeRoIHead: 3 stages, Shared2FCBBoxHead per stage with stds
                             0.1/0.1/0.2/0.2, 0.05/0.05/0.1/0.1, 0.033/0.033/0.067/0.067,
                             reg_class_agnostic True; one FCNMaskHead per stage
  test_cfg.rcnn: score_thr 0.05, nms iou_threshold 0.5, max_per_img 100, mask_thr_binary 0.5

at a small width (FPN 16 channels, fc 64, mask convs 16; mtpd's width_mult 0.0625), 3 classes,
seeded weights, one image of 120 x 160 (maps of the 128 x 160 padded batch), simple_test with
rescale=True at scale factor 1.

What ran, and from where (read outside the repository one file at a time from a code index that
stores each version once; each is the commit the index named; only the numbers are committed):

  mmdet/models/roi_heads/cascade_roi_head.py                      e9bcde49e37186961f26aa01e726afa1456ce979
  mmdet/models/roi_heads/standard_roi_head.py                     347e7fb274e6dbd48a2c86cf9a4751307788e7c7
  mmdet/models/roi_heads/base_roi_head.py                         080742cb2311f5815a08ea7e7a49bb768f828ecc
  mmdet/models/roi_heads/test_mixins.py                           751023dfdf32b55bcf543127d64a393b8fba85e3
  mmdet/models/roi_heads/bbox_heads/bbox_head.py                  ca2f67f704386229f9fa1e40fa65dda15876c355
  mmdet/models/roi_heads/bbox_heads/convfc_bbox_head.py           ca2f67f704386229f9fa1e40fa65dda15876c355
  mmdet/models/roi_heads/mask_heads/fcn_mask_head.py              e175cefe155b5e4bc328ebb42f3292648237003c
  mmdet/models/roi_heads/roi_extractors/single_level_roi_extractor.py 5adf822f2deb071cba1ecd68f7ee225e4c796611
  mmdet/models/roi_heads/roi_extractors/base_roi_extractor.py     fecb2fea20098ea533959ad33f0eb03e6a177e4c (3.x; the 2.x
                                                                  class with featmap_strides kept)
  mmdet/core/post_processing/bbox_nms.py                          00e97308fa85d98e9049a312cee5f9a451a3f44b
  mmdet/core/post_processing/merge_augs.py                        00e97308fa85d98e9049a312cee5f9a451a3f44b
  mmdet/core/bbox/transforms.py                                   015fc113a3ff0f44bbb74d40f0c0ff75b87f6057 (bbox2roi)
  mmdet/core/bbox/coder/delta_xywh_bbox_coder.py                  7563ff04d4a5403a490e3dda18b890499ef1483a

  classes/functions used: CascadeRoIHead, StandardRoIHead, BaseRoIHead, BBoxTestMixin,
  MaskTestMixin, BBoxHead, ConvFCBBoxHead, Shared2FCBBoxHead, FCNMaskHead, _do_paste_mask,
  SingleRoIExtractor, BaseRoIExtractor, multiclass_nms, merge_aug_masks, bbox2roi,
  DeltaXYWHBBoxCoder, delta2bbox (their training, aug-test, async and ONNX code paths are not run).

mmcv v1.7.0 (270c293c9b4bfa90211ccab212d55ccd27bdc09f, git clone): mmcv/ops/roi_align.py
(RoIAlignFunction, RoIAlign), mmcv/ops/nms.py (NMSop, nms, batched_nms).

Shims (not taken from those files): mmcv's COMPILED kernels are torchvision.ops: roi_align_forward
is torchvision.ops.roi_align (avg pooling, the same aligned / sampling_ratio semantics), nms is
torchvision.ops.nms (offset 0), as in scripts/golden/mmdet_retinanet.py, which also supplies the
loader, ConvModule (conv + ReLU, bias without norm), BaseModule and ConfigDict. The registries:
build_head / build_roi_extractor / build_bbox_coder build the named class of the files above;
build_loss returns None (no loss is computed); build_upsample_layer('deconv') is
nn.ConvTranspose2d; mmdet.ops.Conv2d is nn.Conv2d; bbox2result returns (det_bboxes, det_labels)
unchanged (so the detections are kept as tensors); the 2-D delta2bbox is called on the single image
of get_bboxes' batch (batch dim squeezed), as in scripts/golden/mmdet_rpn_proposals.py.

  /usr/bin/python3 scripts/golden/mmdet_roi_heads.py --mmdet DIR --mmcv-git MMCV_CLONE --out test/fixtures/zoo

DIR holds the mmdetection files above (and those scripts/golden/mmdet_retinanet.py reads) as
<basename>.py. Writes mmdet_roi_heads.safetensors:
  inputs: p2..p5 (1, 16, h, w), proposals (P, 4), image_size [120, 160]
  <model>.roi_head.* the weights in mmdetection's names (model: mask_rcnn, cascade)
  <model>.s<i>.rois (K, 4) / .cls_score (K, C + 1, background last) / .bbox_pred (K, 4 or 4 C)
  <model>.det.boxes (D, 4), .det.scores (D), .det.labels (D) (0..C-1)
  <model>.det.mask_probs (D, 28, 28): the detected class's mask probability (cascade: averaged
  over the stages' heads) before pasting; <model>.det.masks (D, 120 * 160 / 8) uint8: get_seg_masks'
  pasted masks at mask_thr_binary, in detection order, row-major, 8 pixels a byte (numpy packbits,
  the first pixel in the high bit).
"""
import argparse
import os
import subprocess
import sys
import types
from abc import ABCMeta, abstractmethod

import numpy as np
import torch
import torchvision
from torch import nn
from torch.autograd import Function
from torch.autograd.function import once_differentiable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmdet_retinanet import MMCV_COMMIT, NS, ConfigDict, _Ext, load_defs, load_reference  # noqa: E402
from torchvision_retinanet import save_safetensors  # noqa: E402

C, REP, MASK, NUM_CLASSES = 16, 64, 16, 3
H, W, BH, BW = 120, 160, 128, 160
STDS = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
TEST_CFG = ConfigDict(score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5), max_per_img=100, mask_thr_binary=0.5)


class _ExtRoI(_Ext):
    @staticmethod
    def roi_align_forward(input, rois, output, argmax_y, argmax_x, aligned_height, aligned_width, spatial_scale,
                          sampling_ratio, pool_mode, aligned):
        assert pool_mode == 1, "only avg pooling is shimmed"
        output.copy_(torchvision.ops.roi_align(input, rois, (aligned_height, aligned_width), spatial_scale,
                                               sampling_ratio, aligned))


def build_from(cfg):
    cfg = dict(cfg)
    return NS[cfg.pop("type")](**cfg)


def load(mmdet_dir, mmcv_git):
    load_reference(mmdet_dir, mmcv_git)

    def git_show(path):
        return subprocess.run(["git", "--git-dir", mmcv_git, "show", f"{MMCV_COMMIT}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    NS.update(ext_module=_ExtRoI, Function=Function, once_differentiable=once_differentiable, Any=object,
              ABCMeta=ABCMeta, abstractmethod=abstractmethod)
    load_defs(git_show("mmcv/ops/roi_align.py"), ["RoIAlignFunction", "RoIAlign"], "mmcv/ops/roi_align.py")
    NS["roi_align"] = NS["RoIAlignFunction"].apply
    NS["ops"] = types.SimpleNamespace(RoIAlign=NS["RoIAlign"])

    def build_bbox_coder(cfg):
        coder = build_from(cfg)
        dec = coder.decode

        def decode(b, d, max_shape=None, **kw):
            if b.dim() == 3:  # get_bboxes' batch of one image
                return dec(b[0], d[0], max_shape=max_shape, **kw)[None]
            return dec(b, d, max_shape=max_shape, **kw)

        coder.decode = decode
        return coder

    def build_upsample_layer(cfg):
        cfg = dict(cfg)
        assert cfg.pop("type") == "deconv"
        return nn.ConvTranspose2d(**cfg)

    NS.update(build_head=build_from, build_roi_extractor=build_from, build_bbox_coder=build_bbox_coder,
              build_loss=lambda cfg: None, build_upsample_layer=build_upsample_layer, Conv2d=nn.Conv2d,
              build_shared_head=None, build_assigner=None, build_sampler=None,
              bbox2result=lambda bboxes, labels, num_classes: (bboxes, labels))
    files = [("transforms.py", ["bbox2roi"]),
             ("bbox_nms.py", ["multiclass_nms"]),
             ("merge_augs.py", ["merge_aug_masks"]),
             ("base_roi_extractor.py", ["BaseRoIExtractor"]),
             ("single_level_roi_extractor.py", ["SingleRoIExtractor"]),
             ("bbox_head.py", ["BBoxHead"]),
             ("convfc_bbox_head.py", ["ConvFCBBoxHead", "Shared2FCBBoxHead"]),
             ("fcn_mask_head.py", ["FCNMaskHead", "_do_paste_mask"]),
             ("base_roi_head.py", ["BaseRoIHead"]),
             ("test_mixins.py", ["BBoxTestMixin", "MaskTestMixin"]),
             ("standard_roi_head.py", ["StandardRoIHead"]),
             ("cascade_roi_head.py", ["CascadeRoIHead"])]
    NS.update(BYTES_PER_FLOAT=4, GPU_MEM_LIMIT=1024 ** 3)
    for f, names in files:
        with open(os.path.join(mmdet_dir, f)) as fh:
            load_defs(fh.read(), names, f)


def extractor(out):
    return dict(type="SingleRoIExtractor", roi_layer=dict(type="RoIAlign", output_size=out, sampling_ratio=0),
                out_channels=C, featmap_strides=[4, 8, 16, 32])


def bbox_head(stds, agnostic):
    return dict(type="Shared2FCBBoxHead", in_channels=C, fc_out_channels=REP, roi_feat_size=7,
                num_classes=NUM_CLASSES,
                bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=stds),
                reg_class_agnostic=agnostic)


MASK_HEAD = dict(type="FCNMaskHead", num_convs=4, in_channels=C, conv_out_channels=MASK, num_classes=NUM_CLASSES)


def build(name):
    if name == "mask_rcnn":
        return NS["StandardRoIHead"](bbox_roi_extractor=extractor(7), bbox_head=bbox_head(STDS[0], False),
                                     mask_roi_extractor=extractor(14), mask_head=MASK_HEAD, test_cfg=TEST_CFG)
    return NS["CascadeRoIHead"](num_stages=3, stage_loss_weights=[1, 0.5, 0.25], bbox_roi_extractor=extractor(7),
                                bbox_head=[bbox_head(s, True) for s in STDS], mask_roi_extractor=extractor(14),
                                mask_head=MASK_HEAD, test_cfg=TEST_CFG)


def seed_weights(head, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for n, p in head.named_parameters():
            if n.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.1)
            elif "fc_cls" in n or "fc_reg" in n:
                p.copy_(torch.randn_like(p) * (1.5 / p.shape[1] ** 0.5))
            else:
                p.copy_(torch.randn_like(p) * (1.4 / (p[0].numel()) ** 0.5))


def run(name, feats, proposals, out):
    head = build(name)
    seed_weights(head, 1 if name == "mask_rcnn" else 2)
    head.eval()
    stages, seg_in = [], {}
    fwd = head._bbox_forward

    def bbox_forward(*a):
        res = fwd(*a)
        rois = a[-1]
        stages.append((rois[:, 1:].clone(), res["cls_score"].clone(), res["bbox_pred"].clone()))
        return res

    head._bbox_forward = bbox_forward
    mh = head.mask_head if name == "mask_rcnn" else head.mask_head[-1]
    seg = mh.get_seg_masks

    def get_seg_masks(mask_pred, det_bboxes, det_labels, *a):
        seg_in["probs"] = mask_pred.sigmoid() if isinstance(mask_pred, torch.Tensor) else torch.from_numpy(mask_pred)
        return seg(mask_pred, det_bboxes, det_labels, *a)

    mh.get_seg_masks = get_seg_masks
    metas = [dict(img_shape=(H, W, 3), ori_shape=(H, W, 3), pad_shape=(BH, BW, 3),
                  scale_factor=np.ones(4, dtype=np.float32), flip=False, flip_direction=None)]
    with torch.no_grad():
        (dets, labels), segms = head.simple_test(feats, [proposals], metas, rescale=True)
    for k, v in head.state_dict().items():
        out[f"{name}.roi_head.{k}"] = v.detach().clone()
    for i, (r, c, d) in enumerate(stages):
        out[f"{name}.s{i}.rois"], out[f"{name}.s{i}.cls_score"], out[f"{name}.s{i}.bbox_pred"] = r, c, d
    n = dets.shape[0]
    out[f"{name}.det.boxes"] = dets[:, :4].contiguous()
    out[f"{name}.det.scores"] = dets[:, 4].contiguous()
    out[f"{name}.det.labels"] = labels
    out[f"{name}.det.mask_probs"] = seg_in["probs"][torch.arange(n), labels].float().contiguous()
    taken = [0] * NUM_CLASSES
    pasted = []
    for i in range(n):  # get_seg_masks groups the masks by class, in detection order
        l = int(labels[i])
        pasted.append(torch.from_numpy(segms[l][taken[l]]))
        taken[l] += 1
    bits = np.packbits(torch.stack(pasted).to(torch.uint8).reshape(n, -1).numpy(), axis=1)  # MSB first
    out[f"{name}.det.masks"] = torch.from_numpy(bits)
    print(name, "stages", len(stages), "rois", stages[0][0].shape[0], "detections", n,
          "labels", torch.bincount(labels, minlength=NUM_CLASSES).tolist())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mmdet", required=True)
    ap.add_argument("--mmcv-git", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    load(a.mmdet, a.mmcv_git)
    g = torch.Generator().manual_seed(7)
    feats = [torch.randn(1, C, BH // s, BW // s, generator=g) for s in (4, 8, 16, 32)]
    objects = torch.tensor([[12.0, 10.0, 70.0, 80.0], [60.0, 30.0, 150.0, 110.0], [90.0, 4.0, 130.0, 44.0],
                            [20.0, 70.0, 52.0, 116.0]])
    props = []
    for b in objects:  # jittered copies of a few boxes (overlapping: NMS has work), then random boxes
        wh = (b[2:] - b[:2]).repeat(2)
        props.append(b + (torch.rand(10, 4, generator=g) - 0.5) * 0.4 * wh)
    xy = torch.rand(40, 2, generator=g) * torch.tensor([W - 16.0, H - 16.0])
    size = 6 + torch.rand(40, 2, generator=g) * 100
    props.append(torch.cat([xy, xy + size], 1))
    proposals = torch.cat(props)
    proposals[:, 0::2] = proposals[:, 0::2].clamp(0, W)
    proposals[:, 1::2] = proposals[:, 1::2].clamp(0, H)
    x1y1 = torch.minimum(proposals[:, :2], proposals[:, 2:] - 2)
    proposals = torch.cat([x1y1, proposals[:, 2:]], 1)
    out = {f"p{l + 2}": f for l, f in enumerate(feats)}
    out["proposals"] = proposals
    out["image_size"] = torch.tensor([H, W], dtype=torch.int64)
    for name in ("mask_rcnn", "cascade"):
        run(name, feats, proposals, out)
    save_safetensors(os.path.join(a.out, "mmdet_roi_heads.safetensors"), out)


if __name__ == "__main__":
    main()
