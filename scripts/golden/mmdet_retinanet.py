#!/usr/bin/python3
"""Golden numbers for mtpd's mmdetection RetinaNets, from mmdetection's and mmcv's own code.

Runs the model code of mmdetection 2.x (the line the paper used) on Debian's python3-torch 1.13
with seeded weights at a small width, for mmdetection's two RetinaNet configs:

  retinanet_r50_fpn             ResNet-50 (pytorch style, BN in eval), FPN in_channels
                                [256, 512, 1024, 2048] start_level 1, add_extra_convs 'on_input',
                                num_outs 5; RetinaHead 4 stacked convs, AnchorGenerator
                                octave_base_scale 4, scales_per_octave 3, ratios (0.5, 1, 2),
                                strides 8..128; DeltaXYWHBBoxCoder means 0 stds 1
  retinanet_swin-t-p4-w7_fpn    SwinTransformer embed 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24),
                                window 7, out_indices (1, 2, 3) (norm1..norm3), patch_norm; FPN
                                in_channels [192, 384, 768] start_level 0, 'on_input'

  test_cfg: nms_pre 1000, min_bbox_size 0, score_thr 0.05, nms iou_threshold 0.5, max_per_img 100
  test pipeline: Resize keep_ratio img_scale (max, min) (mmcv.rescale_size), Normalize mean
  (123.675, 116.28, 103.53) std (58.395, 57.12, 57.375) to_rgb, Pad size_divisor 32.

and writes per model (test/fixtures/zoo):

  <name>.pth               the checkpoint in mmdetection's layout: {'meta': {'CLASSES', ...},
                           'state_dict': backbone.* / neck.* / bbox_head.*} (what `mtpd import` reads)
  (the *_tiny_synth checkpoints carry no outputs: they are the `mtpd init` config test's models)
  <name>.io.safetensors    images (RGB 0..1), features.p3..p7, head.cls.<l> / head.reg.<l> (raw
                           head outputs per level), det.<i>.boxes/scores/labels (original pixels)

plus mmdet_resize_sizes.json: the test pipeline's resized size, scale_factor and padded size of a
list of image shapes at img_scale (1333, 800).

What ran, and from where. The mmdetection repository is too large to copy here whole, so its files
were read one by one from a code index, which stores each file version once; the files do not all
come from the same commit (each commit is the one the index named; all are the mmdetection 2.x
line except where noted, and the code paths used are the same in 2.25..2.28):

  mmdet/models/backbones/resnet.py               7fb530c2ba8643bd363027f648f66c1b38ae781e (3.x; same ResNet code)
  mmdet/models/utils/res_layer.py                082a63fe94ae94df234ff17bff23ffb5190abc5b
  mmdet/models/backbones/swin.py                 2a643e474c2f174cc40750e4c9ba1ed33dd13422
  mmdet/models/necks/fpn.py                      6f7d0edaac14dabcec0bb18ae4f08d7bd6fc2166
  mmdet/models/dense_heads/retina_head.py        7ab0012023e7000136266aee3a05b2e12d27a94b (3.x; same layers)
  mmdet/models/dense_heads/base_dense_head.py    1c076bdd0049d139079b11c2423372aaef651de1 (3.x predict_by_feat:
                                                 the 2.18+ get_bboxes algorithm; rescale multiplies by 1 / scale)
  mmdet/core/utils/misc.py                       049f387150c16e39f65cd27d10651e5a1a6fa8ee
  mmdet/core/anchor/anchor_generator.py          866d7b19aecc502b49f1db58dcef11b089533c12
  mmdet/core/bbox/coder/delta_xywh_bbox_coder.py 7563ff04d4a5403a490e3dda18b890499ef1483a

mmcv is read from a git clone at tag v1.7.0 (270c293c9b4bfa90211ccab212d55ccd27bdc09f, the mmcv
mmdetection 2.28 pins): mmcv/ops/nms.py (nms, batched_nms, NMSop), mmcv/cnn/bricks/transformer.py
(FFN, PatchEmbed, PatchMerging, AdaptivePadding), mmcv/cnn/bricks/drop.py (DropPath),
mmcv/image/geometric.py (rescale_size, _scale_size, impad, impad_to_multiple),
mmcv/image/photometric.py (imnormalize, imnormalize_).

The classes and functions listed are taken from those files unchanged (decorators and imports
dropped) and executed together in one namespace with these shims: the registries/builders
(build_norm_layer: BN -> bn<postfix>, LN -> ln<postfix>; build_conv_layer: nn.Conv2d;
build_activation_layer: ReLU/GELU; build_dropout: DropPath/Dropout), BaseModule (nn.Module keeping
init_cfg; init_weights is not run: the weights are seeded here), ConvModule (conv [+ norm] [+ act],
bias when there is no norm, parameters under .conv as mmcv's), ConfigDict, InstanceData, the box
helpers of mmdet 3.x (cat_boxes, get_box_tensor, get_box_wh, scale_boxes), AnchorHead (the fields
RetinaHead uses: cls_out_channels, num_base_priors, prior_generator, bbox_coder, forward =
multi_apply(forward_single)), mmcv's compiled nms kernel as torchvision.ops.nms (offset 0), cv2's
arithmetic in imnormalize as numpy, and mmdet's Resize._resize_img: imrescale's size from
mmcv.rescale_size, scale_factor = (new_w / w, new_h / h); the pixels are resampled with torch's
bilinear kernel (mmdetection resizes with OpenCV's, not compared here), mtpd does the same.

Keep the mmdetection/mmcv sources outside the repository; only the numbers are committed:

  /usr/bin/python3 scripts/golden/mmdet_retinanet.py --mmdet DIR --mmcv-git MMCV_CLONE --out test/fixtures/zoo

DIR holds the mmdetection files above as <basename>.py (resnet.py, res_layer.py, swin.py, fpn.py,
retina_head.py, base_dense_head.py, misc.py, anchor_generator.py, delta_xywh_bbox_coder.py).
"""
import argparse
import ast
import copy
import json
import math
import os
import struct
import subprocess
import sys
import warnings
from abc import ABCMeta
from collections import OrderedDict
from copy import deepcopy
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
import torchvision
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

MMCV_COMMIT = "270c293c9b4bfa90211ccab212d55ccd27bdc09f"


# ---------------------------------------------------------------------------------------------
# shims for what is not taken from the reference files
class ConfigDict(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e


class BaseModule(nn.Module):
    def __init__(self, init_cfg=None):
        super().__init__()
        self.init_cfg = copy.deepcopy(init_cfg)


def build_norm_layer(cfg, num_features, postfix=""):
    t = cfg["type"]
    if t in ("BN", "BN2d"):
        layer = nn.BatchNorm2d(num_features, eps=cfg.get("eps", 1e-5))
        abbr = "bn"
    elif t == "LN":
        layer = nn.LayerNorm(num_features, eps=cfg.get("eps", 1e-5))
        abbr = "ln"
    else:
        raise KeyError(t)
    for p in layer.parameters():
        p.requires_grad = cfg.get("requires_grad", True)
    return abbr + str(postfix), layer


def build_conv_layer(cfg, *args, **kwargs):
    assert cfg is None or cfg.get("type", "Conv2d") == "Conv2d", cfg
    return nn.Conv2d(*args, **kwargs)


def build_activation_layer(cfg):
    t = cfg["type"]
    if t == "ReLU":
        return nn.ReLU(inplace=cfg.get("inplace", False))
    if t == "GELU":
        return nn.GELU()
    raise KeyError(t)


def build_dropout(cfg, default_args=None):
    cfg = dict(cfg)
    t = cfg.pop("type")
    if t == "DropPath":
        return NS["DropPath"](**cfg)
    if t == "Dropout":
        return nn.Dropout(p=cfg.get("drop_prob", 0.5))
    raise KeyError(t)


class ConvModule(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias="auto", conv_cfg=None, norm_cfg=None, act_cfg=dict(type="ReLU"), inplace=True, **kw):
        super().__init__()
        with_norm = norm_cfg is not None
        bias = not with_norm if bias == "auto" else bias
        self.conv = build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size, stride=stride,
                                     padding=padding, dilation=dilation, groups=groups, bias=bias)
        self.norm_name = None
        if with_norm:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        self.activate = None
        if act_cfg is not None:
            a = dict(act_cfg)
            if a["type"] == "ReLU":
                a.setdefault("inplace", inplace)
            self.activate = build_activation_layer(a)

    def forward(self, x):
        x = self.conv(x)
        if self.norm_name:
            x = getattr(self, self.norm_name)(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


class InstanceData:
    def __init__(self, **fields):
        object.__setattr__(self, "_fields", OrderedDict(fields))

    def __setattr__(self, k, v):
        self._fields[k] = v

    def __getattr__(self, k):
        f = object.__getattribute__(self, "_fields")
        if k in f:
            return f[k]
        raise AttributeError(k)

    def pop(self, k):
        return self._fields.pop(k)

    def __getitem__(self, idx):
        return InstanceData(**{k: v[idx] for k, v in self._fields.items()})


def scale_boxes(boxes, scale_factor):
    # mmdet 3.x structures/bbox/transforms.py for plain tensors
    repeat_num = int(boxes.size(-1) / 2)
    scale_factor = boxes.new_tensor(scale_factor).repeat((1, repeat_num))
    return boxes * scale_factor


def get_box_wh(boxes):
    return boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]


class _Ext:
    """mmcv's compiled nms kernel (CPU: sort by score, greedy IoU > threshold) as torchvision's."""

    @staticmethod
    def nms(bboxes, scores, iou_threshold, offset):
        assert offset == 0
        return torchvision.ops.nms(bboxes, scores, iou_threshold)


class _Cv2:
    """The cv2 calls of mmcv.imnormalize_ and impad, as numpy (same arithmetic in float32)."""
    COLOR_BGR2RGB = 4
    BORDER_CONSTANT, BORDER_REPLICATE, BORDER_REFLECT, BORDER_WRAP, BORDER_REFLECT_101 = 0, 1, 2, 3, 4

    @staticmethod
    def cvtColor(img, code, dst=None):
        assert code == _Cv2.COLOR_BGR2RGB
        dst[...] = img[..., ::-1].copy()
        return dst

    @staticmethod
    def subtract(a, b, dst=None):
        np.subtract(a, b, out=dst)
        return dst

    @staticmethod
    def multiply(a, b, dst=None):
        np.multiply(a, b, out=dst)
        return dst

    @staticmethod
    def copyMakeBorder(img, top, bottom, left, right, border_type, value=0):
        assert border_type == _Cv2.BORDER_CONSTANT
        pad = [(top, bottom), (left, right)] + [(0, 0)] * (img.ndim - 2)
        v = value[0] if isinstance(value, (list, tuple)) else value
        return np.pad(img, pad, mode="constant", constant_values=v)


def _noop_decorator(*a, **k):
    return lambda f: f


NS: Dict[str, Any] = dict(
    torch=torch, nn=nn, F=F, np=np, cp=cp, math=math, warnings=warnings, copy=copy, deepcopy=deepcopy,
    partial=partial, ABCMeta=ABCMeta, List=List, Optional=Optional, Tuple=Tuple, Union=Union, Any=Any,
    Dict=Dict, Sequence=Sequence, Tensor=Tensor, _pair=_pair, to_2tuple=_pair, BaseModule=BaseModule,
    ModuleList=nn.ModuleList, Sequential=nn.Sequential, Linear=nn.Linear, build_norm_layer=build_norm_layer,
    build_conv_layer=build_conv_layer, build_activation_layer=build_activation_layer,
    build_dropout=build_dropout, ConvModule=ConvModule, ConfigDict=ConfigDict, InstanceData=InstanceData,
    InstanceList=list, OptMultiConfig=Optional[dict], OptConfigType=Optional[dict], ConfigType=dict,
    cat_boxes=lambda bs: torch.cat(bs, 0), get_box_tensor=lambda b: b, get_box_wh=get_box_wh,
    scale_boxes=scale_boxes, auto_fp16=_noop_decorator, force_fp32=_noop_decorator,
    deprecated_api_warning=_noop_decorator, ext_module=_Ext, cv2=_Cv2, array_like_type=Union[Tensor, np.ndarray],
    BaseBBoxCoder=object, numbers=__import__("numbers"), no_type_check=lambda f: f,
)


def load_defs(source: str, names: List[str], origin: str):
    """Executes the named top-level classes/functions of a source file in NS (decorators dropped)."""
    tree = ast.parse(source, origin)
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names:
            node.decorator_list = []
            keep.append(node)
    found = {n.name for n in keep}
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"{origin}: {missing} not found")
    mod = ast.Module(body=keep, type_ignores=[])
    exec(compile(mod, origin, "exec"), NS)


def load_reference(mmdet_dir: str, mmcv_git: str):
    def git_show(path):
        return subprocess.run(["git", "--git-dir", mmcv_git, "show", f"{MMCV_COMMIT}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    load_defs(git_show("mmcv/cnn/bricks/drop.py"), ["drop_path", "DropPath"], "mmcv/cnn/bricks/drop.py")
    load_defs(git_show("mmcv/cnn/bricks/transformer.py"), ["AdaptivePadding", "PatchEmbed", "PatchMerging", "FFN"],
              "mmcv/cnn/bricks/transformer.py")
    load_defs(git_show("mmcv/ops/nms.py"), ["NMSop", "nms", "batched_nms"], "mmcv/ops/nms.py")
    load_defs(git_show("mmcv/image/geometric.py"), ["_scale_size", "rescale_size", "impad", "impad_to_multiple"],
              "mmcv/image/geometric.py")
    load_defs(git_show("mmcv/image/photometric.py"), ["imnormalize", "imnormalize_"], "mmcv/image/photometric.py")
    files = [("misc.py", ["multi_apply", "select_single_mlvl", "filter_scores_and_topk"]),
             ("anchor_generator.py", ["AnchorGenerator"]),
             ("delta_xywh_bbox_coder.py", ["DeltaXYWHBBoxCoder", "delta2bbox"]),
             ("res_layer.py", ["ResLayer"]),
             ("resnet.py", ["Bottleneck", "ResNet"]),
             ("swin.py", ["WindowMSA", "ShiftWindowMSA", "SwinBlock", "SwinBlockSequence", "SwinTransformer"]),
             ("fpn.py", ["FPN"]),
             ("base_dense_head.py", ["BaseDenseHead"])]
    for f, names in files:
        with open(os.path.join(mmdet_dir, f)) as fh:
            load_defs(fh.read(), names, f)

    # AnchorHead: only what RetinaHead and predict_by_feat use (mmdet's anchor_head.py is not read)
    class AnchorHead(NS["BaseDenseHead"]):
        def __init__(self, num_classes, in_channels, feat_channels=256, anchor_generator=None, bbox_coder=None,
                     test_cfg=None, init_cfg=None, **kw):
            super().__init__(init_cfg)
            self.num_classes = num_classes
            self.in_channels = in_channels
            self.feat_channels = feat_channels
            self.use_sigmoid_cls = True
            self.cls_out_channels = num_classes
            ag = {k: v for k, v in anchor_generator.items() if k != "type"}
            self.prior_generator = NS["AnchorGenerator"](**ag)
            pg = self.prior_generator
            # the 2.x generator's grid_anchors under the name 3.x's head calls
            pg.grid_priors = lambda sizes, dtype, device: [a.to(dtype) for a in pg.grid_anchors(sizes, device)]
            self.num_base_priors = pg.num_base_anchors[0]
            bc = {k: v for k, v in (bbox_coder or {}).items() if k != "type"}
            self.bbox_coder = NS["DeltaXYWHBBoxCoder"](**bc)
            self.bbox_coder.encode_size = 4
            self.test_cfg = test_cfg
            self._init_layers()

        def forward(self, feats):
            return NS["multi_apply"](self.forward_single, feats)

    NS["AnchorHead"] = AnchorHead
    with open(os.path.join(mmdet_dir, "retina_head.py")) as fh:
        load_defs(fh.read(), ["RetinaHead"], "retina_head.py")


# ---------------------------------------------------------------------------------------------
def scaled(c, m):
    # mtpd: max(1, lround(c * m))
    return max(1, int(math.floor(c * m + 0.5)))


TEST_CFG = ConfigDict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=ConfigDict(type="nms", iou_threshold=0.5),
                      max_per_img=100)
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


class RetinaNetMmdet(nn.Module):
    def __init__(self, backbone, neck, bbox_head):
        super().__init__()
        self.backbone, self.neck, self.bbox_head = backbone, neck, bbox_head


def build(spec):
    torch.manual_seed(spec["seed"])
    wm = spec["width_mult"]
    out = scaled(256, wm)
    if spec["backbone"] == "resnet50":
        base = scaled(64, wm)
        backbone = NS["ResNet"](depth=50, base_channels=base, num_stages=4, out_indices=(0, 1, 2, 3),
                                frozen_stages=1, norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True,
                                style="pytorch")
        neck = NS["FPN"](in_channels=[base * 4, base * 8, base * 16, base * 32], out_channels=out, start_level=1,
                         add_extra_convs="on_input", num_outs=5)
    else:
        embed = scaled(96, wm)
        heads = tuple(scaled(h, wm) for h in (3, 6, 12, 24))
        backbone = NS["SwinTransformer"](embed_dims=embed, depths=(2, 2, 6, 2), num_heads=heads, window_size=7,
                                         mlp_ratio=4, qkv_bias=True, qk_scale=None, drop_rate=0.0,
                                         attn_drop_rate=0.0, drop_path_rate=0.2, patch_norm=True,
                                         out_indices=(1, 2, 3), with_cp=False, convert_weights=True)
        neck = NS["FPN"](in_channels=[embed * 2, embed * 4, embed * 8], out_channels=out, start_level=0,
                         add_extra_convs="on_input", num_outs=5)
    head = NS["RetinaHead"](num_classes=spec["num_classes"], in_channels=out, stacked_convs=4, feat_channels=out,
                            anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3,
                                                  ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
                            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0],
                                            target_stds=[1.0, 1.0, 1.0, 1.0]),
                            test_cfg=TEST_CFG)
    model = RetinaNetMmdet(backbone, neck, head)
    perturb(model, spec["seed"])
    return model.eval()


def perturb(model, seed):
    """Random but well-scaled values everywhere (BN statistics, LayerNorms, a head whose scores
    cross the 0.05 threshold), so every path of the comparison carries signal."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.weight.numel()
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            elif isinstance(m, nn.LayerNorm):
                n = m.weight.numel()
                m.weight.copy_(0.7 + 0.6 * torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
            elif hasattr(m, "relative_position_bias_table"):
                m.relative_position_bias_table.normal_(0, 0.5, generator=g)
        h = model.bbox_head
        s = math.sqrt(16.0 / h.retina_cls.in_channels)
        for cm in list(h.cls_convs) + list(h.reg_convs):
            cm.conv.weight.normal_(0, 0.08 * s, generator=g)
            cm.conv.bias.normal_(0, 0.05, generator=g)
        h.retina_cls.weight.normal_(0, 0.05 * s, generator=g)
        h.retina_cls.bias.normal_(-1.5, 0.5, generator=g)
        h.retina_reg.weight.normal_(0, 0.02 * s, generator=g)
        h.retina_reg.bias.normal_(0, 0.1, generator=g)


def images(seed, sizes):
    g = torch.Generator().manual_seed(seed + 2)
    out = []
    for (h, w) in sizes:
        img = torch.rand(3, h, w, generator=g)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        out.append((0.5 * img + 0.25 * (1 + torch.sin(6 * xx + 3 * yy))[None]).clamp(0, 1))
    return out


def resize_img(img_hwc, img_scale):
    """mmdet Resize._resize_img (keep_ratio): mmcv.imrescale's size from rescale_size, scale_factor
    (new_w / w, new_h / h); pixels with torch's bilinear kernel (see the header)."""
    h, w = img_hwc.shape[:2]
    new_w, new_h = NS["rescale_size"]((w, h), img_scale)
    x = torch.from_numpy(np.ascontiguousarray(img_hwc)).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    return x, (new_w / w, new_h / h)


def test_pipeline(img_rgb01, img_scale):
    """LoadImage (BGR, float32 0..255) -> Resize -> Normalize(to_rgb) -> Pad(32); returns the CHW
    tensor and the img_meta the head uses."""
    bgr = (img_rgb01.permute(1, 2, 0).numpy()[..., ::-1] * 255.0).astype(np.float32)
    ori_shape = bgr.shape
    img, scale_factor = resize_img(bgr, img_scale)
    img_shape = img.shape
    img = NS["imnormalize"](img, MEAN, STD, True)
    img = NS["impad_to_multiple"](img, 32, pad_val=0)
    meta = dict(ori_shape=ori_shape, img_shape=img_shape[:2], pad_shape=img.shape, scale_factor=scale_factor)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1), meta


DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64", torch.int32: "I32", torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for k, t in tensors.items():
        t = t.detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[k] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_checkpoint(model, spec, out_dir):
    classes = tuple(spec["classes"])
    sd = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    torch.save({"meta": {"mmdet_version": "2.28.2", "CLASSES": classes, "config": spec["config"]}, "state_dict": sd},
               os.path.join(out_dir, f"{spec['name']}.pth"))
    return sd


def run(spec, out_dir):
    model = build(spec)
    if spec.get("checkpoint_only"):
        sd = save_checkpoint(model, spec, out_dir)
        print(f"{spec['name']}: checkpoint only, {sum(v.numel() for v in sd.values())} state values")
        return
    imgs = images(spec["seed"], spec["image_sizes"])
    img_scale = (spec["max_size"], spec["min_size"])
    tensors, metas = zip(*[test_pipeline(im, img_scale) for im in imgs])
    hmax = max(t.shape[1] for t in tensors)
    wmax = max(t.shape[2] for t in tensors)
    batch = torch.zeros(len(tensors), 3, hmax, wmax)
    for i, t in enumerate(tensors):
        batch[i, :, :t.shape[1], :t.shape[2]] = t
    io = OrderedDict()
    for i, im in enumerate(imgs):
        io[f"image.{i}"] = im
    with torch.no_grad():
        feats = model.neck(model.backbone(batch))
        for name, f in zip(["p3", "p4", "p5", "p6", "p7"], feats):
            io[f"features.{name}"] = f
        cls_scores, bbox_preds = model.bbox_head(feats)
        for l, (c, r) in enumerate(zip(cls_scores, bbox_preds)):
            io[f"head.cls.{l}"] = c
            io[f"head.reg.{l}"] = r
        results = model.bbox_head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=list(metas),
                                                  cfg=TEST_CFG, rescale=True)
    for i, r in enumerate(results):
        io[f"det.{i}.boxes"] = r.bboxes
        io[f"det.{i}.scores"] = r.scores
        io[f"det.{i}.labels"] = r.labels
        io[f"meta.{i}.img_shape"] = torch.tensor(metas[i]["img_shape"], dtype=torch.int64)
    sd = save_checkpoint(model, spec, out_dir)
    name = spec["name"]
    save_safetensors(os.path.join(out_dir, f"{name}.io.safetensors"), io,
                     {"min_size": spec["min_size"], "max_size": spec["max_size"], "torch": torch.__version__,
                      "mmcv": f"v1.7.0 {MMCV_COMMIT}", "script": "scripts/golden/mmdet_retinanet.py"})
    print(f"{name}: {sum(v.numel() for v in sd.values())} state values, detections "
          f"{[len(r.scores) for r in results]}, image shapes {[m['img_shape'] for m in metas]}")


def resize_sizes(out_dir):
    shapes = [(480, 640), (427, 640), (640, 480), (500, 375), (333, 500), (612, 612), (1, 1), (799, 1201),
              (100, 2000), (2000, 100), (375, 500), (640, 427), (300, 301), (1024, 683), (15, 17), (801, 1333)]
    rows = []
    for (h, w) in shapes:
        new_w, new_h = NS["rescale_size"]((w, h), (1333, 800))
        sf = np.array([new_w / w, new_h / h, new_w / w, new_h / h], dtype=np.float32)
        pad = (int(math.ceil(new_h / 32) * 32), int(math.ceil(new_w / 32) * 32))
        rows.append({"shape": [h, w], "resized": [new_h, new_w], "scale_factor": [float(x) for x in sf],
                     "padded": list(pad)})
    with open(os.path.join(out_dir, "mmdet_resize_sizes.json"), "w") as f:
        json.dump({"img_scale": [1333, 800], "script": "scripts/golden/mmdet_retinanet.py", "sizes": rows}, f,
                  indent=1)
    print(f"resize: {len(rows)} shapes")


SYNTH = ["circle", "triangle", "square", "diamond", "hexagon", "star", "ring", "cross"]  # mtpd data synth
SPECS = [
    dict(name="mmdet_retinanet_r50_small", backbone="resnet50", width_mult=0.125, num_classes=3, seed=11,
         min_size=128, max_size=160, image_sizes=[(100, 140), (120, 96)], classes=["cat", "dog", "bird"],
         config="retinanet_r50_fpn_1x_coco.py (width 1/8, 3 classes, img_scale (160, 128))"),
    dict(name="mmdet_retinanet_swin_t_small", backbone="swin_t", width_mult=0.125, num_classes=3, seed=12,
         min_size=128, max_size=160, image_sizes=[(100, 140), (120, 96)], classes=["cat", "dog", "bird"],
         config="retinanet_swin-t-p4-w7_fpn_1x_coco.py (width 1/8, 3 classes, img_scale (160, 128))"),
    # checkpoints only, for the `mtpd init` config test on the synthetic dataset's 8 classes
    dict(name="mmdet_retinanet_r50_tiny_synth", backbone="resnet50", width_mult=0.0625, num_classes=8, seed=13,
         classes=SYNTH, checkpoint_only=True, config="retinanet_r50_fpn_1x_coco.py (width 1/16, 8 classes)"),
    dict(name="mmdet_retinanet_swin_t_tiny_synth", backbone="swin_t", width_mult=0.0625, num_classes=8, seed=14,
         classes=SYNTH, checkpoint_only=True, config="retinanet_swin-t-p4-w7_fpn_1x_coco.py (width 1/16, 8 classes)"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mmdet", required=True, help="folder with the mmdetection files (see the header)")
    ap.add_argument("--mmcv-git", required=True, help="git directory of an open-mmlab/mmcv clone with v1.7.0")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    load_reference(a.mmdet, a.mmcv_git)
    os.makedirs(a.out, exist_ok=True)
    resize_sizes(a.out)
    for spec in SPECS:
        run(spec, a.out)


if __name__ == "__main__":
    main()
