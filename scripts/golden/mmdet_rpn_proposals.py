#!/usr/bin/python3
"""Golden RPN proposals of mmdetection's two-stage configs (mask_rcnn_r50_fpn and
cascade_mask_rcnn_r50_fpn share this RPN), from mmdetection's own RPNHead:

  rpn_head = dict(type='RPNHead', in_channels=256, feat_channels=256,
                  anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                        strides=[4, 8, 16, 32, 64]),
                  bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4))
  test_cfg.rpn = dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0)

Seeded weights at a small width (in/feat channels 16), seeded P2..P6 maps of a few padded batches
(one image each; the image's unpadded size is smaller than the batch), RPNHead.forward then
RPNHead._get_bboxes (per level: sigmoid scores, the top nms_pre by a descending sort, decode with
clipping to the image, boxes with w, h > min_bbox_size kept, mmcv's batched_nms over level ids,
the first max_per_img kept).

What ran, and from where (read outside the repository; only the numbers are committed):

  mmdet/models/dense_heads/rpn_head.py           006c106415fc038bf218de6b5c38e32fdc618570 (2.x):
                                                 RPNHead.__init__, _init_layers, forward_single,
                                                 _get_bboxes verbatim (docstrings, loss and
                                                 onnx_export dropped; decorators dropped)
  mmdet/core/anchor/anchor_generator.py          866d7b19aecc502b49f1db58dcef11b089533c12
  mmdet/core/bbox/coder/delta_xywh_bbox_coder.py 7563ff04d4a5403a490e3dda18b890499ef1483a
  mmcv/ops/nms.py                                v1.7.0 (270c293c9b4bfa90211ccab212d55ccd27bdc09f): nms,
                                                 batched_nms, NMSop

Shims (what is not taken from those files): mmcv's compiled nms kernel is torchvision.ops.nms
(as in scripts/golden/mmdet_retinanet.py, which also supplies the loader and its other shims);
AnchorHead keeps only what RPNHead uses (num_anchors 3, cls_out_channels 1, use_sigmoid_cls,
anchor_generator, bbox_coder, test_cfg, then _init_layers); RPNTestMixin is empty (not called);
mmdet.core.export.get_k_for_topk is its non-ONNX branch (k if 0 < k < size else -1); the 2-D
delta2bbox of the coder file above is called on the single image of the batch (batch dim
squeezed), and max_shape is the image's (h, w).

  /usr/bin/python3 scripts/golden/mmdet_rpn_proposals.py --mmdet DIR --mmcv-git MMCV_CLONE --out test/fixtures/zoo

DIR holds rpn_head.py and the files scripts/golden/mmdet_retinanet.py reads.
Writes mmdet_rpn_proposals.safetensors: rpn_head.* (mmdetection names), <case>.p2..p6 (1, 16, h, w),
<case>.proposals (P, 4) and <case>.scores (P), metadata cases {name: [image h, image w, batch h, batch w]}.
"""
import argparse
import json
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmdet_retinanet import NS, ConfigDict, load_defs, load_reference  # noqa: E402
from torchvision_retinanet import save_safetensors  # noqa: E402

C = 16
# name: image (h, w), padded batch (h, w)
CASES = {"a": (60, 90, 64, 96), "b": (128, 100, 128, 128), "c": (150, 224, 160, 224)}
TEST_CFG = ConfigDict(nms_pre=1000, max_per_img=1000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0)


def get_k_for_topk(k, size):
    k = int(k)
    return k if 0 < k < size else -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mmdet", required=True)
    ap.add_argument("--mmcv-git", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    load_reference(a.mmdet, a.mmcv_git)

    export = types.ModuleType("mmdet.core.export")
    export.get_k_for_topk = get_k_for_topk
    for name in ("mmdet", "mmdet.core"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["mmdet.core.export"] = export

    class AnchorHead(torch.nn.Module):
        def __init__(self, num_classes, in_channels, feat_channels=256, anchor_generator=None, bbox_coder=None,
                     test_cfg=None, init_cfg=None):
            super().__init__()
            self.in_channels, self.feat_channels = in_channels, feat_channels
            self.use_sigmoid_cls, self.cls_out_channels = True, num_classes
            self.anchor_generator = NS["AnchorGenerator"](**{k: v for k, v in anchor_generator.items() if k != "type"})
            self.num_anchors = self.anchor_generator.num_base_anchors[0]
            self.bbox_coder = NS["DeltaXYWHBBoxCoder"](**{k: v for k, v in bbox_coder.items() if k != "type"})
            dec = self.bbox_coder.decode
            self.bbox_coder.decode = lambda b, d, max_shape=None: dec(b[0], d[0], max_shape=max_shape)[None]
            self.test_cfg = test_cfg
            self._init_layers()

    NS["AnchorHead"] = AnchorHead
    NS["RPNTestMixin"] = type("RPNTestMixin", (), {})
    with open(os.path.join(a.mmdet, "rpn_head.py")) as fh:
        load_defs(fh.read(), ["RPNHead"], "rpn_head.py")

    torch.manual_seed(0)
    head = NS["RPNHead"](C, feat_channels=C,
                         anchor_generator=dict(type="AnchorGenerator", scales=[8], ratios=[0.5, 1.0, 2.0],
                                               strides=[4, 8, 16, 32, 64]),
                         bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
                         test_cfg=TEST_CFG)
    with torch.no_grad():
        for n, p in head.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if n.endswith("weight") else 0.1))
    head.eval()
    out = {f"rpn_head.{k}": v.detach().clone() for k, v in head.state_dict().items()}
    meta = {}
    for name, (h, w, bh, bw) in CASES.items():
        grids = [((bh + s - 1) // s, (bw + s - 1) // s) for s in (4, 8, 16, 32)]
        grids.append(((grids[-1][0] + 1) // 2, (grids[-1][1] + 1) // 2))  # P6 = max_pool2d(P5, 1, 2)
        maps = [torch.randn(1, C, gh, gw) for gh, gw in grids]
        with torch.no_grad():
            cls, reg = NS["multi_apply"](head.forward_single, maps)
            anchors = head.anchor_generator.grid_anchors(grids, "cpu")
            dets = head._get_bboxes(cls, reg, anchors, (h, w), None, TEST_CFG)[0]
        for l, m in enumerate(maps):
            out[f"{name}.p{l + 2}"] = m
        out[f"{name}.proposals"] = dets[:, :4].contiguous()
        out[f"{name}.scores"] = dets[:, 4].contiguous()
        meta[name] = [h, w, bh, bw]
        print(name, tuple(dets.shape))
    save_safetensors(os.path.join(a.out, "mmdet_rpn_proposals.safetensors"), out, {"cases": json.dumps(meta)})


if __name__ == "__main__":
    main()
