#!/usr/bin/python3
"""Golden numbers for mtpd's detectors, from torchvision 0.14 (Debian's python3-torchvision).

Builds torchvision RetinaNet models with a fixed seed, perturbs the parameters and frozen
statistics so every path carries signal (FrozenBatchNorm2d statistics, a head that gives scores
above the 0.05 threshold), runs them on fixed images and targets, and writes per model:

  <out>/<name>.weights.safetensors   the state dict, torchvision's names (what mtpd loads)
  <out>/<name>.io.safetensors        images, targets, and torchvision's outputs:
                                     features.p3..p7 (eval), loss.* (train mode), det.<i>.* (eval)
                                     __metadata__.config = the mtpd "retinanet" options (JSON)

Reduced-width models (--set small, the default) keep every layer type and name of the real
architecture at a fraction of the size; they are committed under test/fixtures/models and checked
by test/models/parity.test.ts without Python. --set full builds the real widths for
scripts/parity.mjs (not committed). Run with Debian's /usr/bin/python3 (the PATH python3 has no
torch):

  /usr/bin/python3 scripts/golden/torchvision_retinanet.py --out test/fixtures/models
"""
import argparse
import json
import math
import os
import struct
from collections import OrderedDict

import torch
from torch import nn
import torchvision
from torchvision.models.resnet import ResNet, BasicBlock, Bottleneck
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d, FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

assert torchvision.__version__.startswith("0.14"), f"expected torchvision 0.14, got {torchvision.__version__}"


def scaled(c, m):
    # mtpd: max(1, lround(c * m)); the multipliers used here never hit a .5 tie.
    return max(1, int(math.floor(c * m + 0.5)))


class NarrowResNet(ResNet):
    """torchvision's ResNet with every width scaled by width_mult (names unchanged)."""

    def __init__(self, block, layers, width_mult, groups=1, width_per_group=64, norm_layer=FrozenBatchNorm2d):
        nn.Module.__init__(self)
        self._norm_layer = norm_layer
        self.inplanes = scaled(64, width_mult)
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, scaled(64, width_mult), layers[0])
        self.layer2 = self._make_layer(block, scaled(128, width_mult), layers[1], stride=2)
        self.layer3 = self._make_layer(block, scaled(256, width_mult), layers[2], stride=2)
        self.layer4 = self._make_layer(block, scaled(512, width_mult), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, 10)


ARCHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], 1, 64),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 1, 64),
    "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], 32, 4),
}


def resnet_backbone(arch, width_mult, groups, wpg, layers, norm_layer, trainable_layers, fpn_channels):
    block, default_layers, g0, w0 = ARCHS[arch]
    body = NarrowResNet(block, layers or default_layers, width_mult, groups or g0, wpg or w0, norm_layer)
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, p in body.named_parameters():
        if all(not name.startswith(l) for l in layers_to_train):
            p.requires_grad_(False)
    out = scaled(fpn_channels, width_mult)
    c = [body.layer2[-1], body.layer3[-1], body.layer4[-1]]
    exp = block.expansion
    in_list = [scaled(128, width_mult) * exp, scaled(256, width_mult) * exp, scaled(512, width_mult) * exp]
    return BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, in_list, out,
                           extra_blocks=LastLevelP6P7(out, out))


class SwinBody(nn.Module):
    """Swin's `features` with the four stage outputs permuted to NCHW (mtpd's Swin body)."""

    def __init__(self, swin):
        super().__init__()
        self.features = swin.features

    def forward(self, x):
        out = OrderedDict()
        for i, m in enumerate(self.features):
            x = m(x)
            if i in (3, 5, 7):
                out[str(i)] = x.permute(0, 3, 1, 2).contiguous()
        return out


class SwinWithFPN(nn.Module):
    def __init__(self, swin, in_list, out):
        super().__init__()
        self.body = SwinBody(swin)
        self.fpn = FeaturePyramidNetwork(in_list, out, extra_blocks=LastLevelP6P7(out, out))
        self.out_channels = out

    def forward(self, x):
        return self.fpn(self.body(x))


def swin_backbone(width_mult, depths, sd_prob, fpn_channels):
    embed = scaled(96, width_mult)
    heads = [scaled(h, width_mult) for h in (3, 6, 12, 24)]
    swin = SwinTransformer(patch_size=[4, 4], embed_dim=embed, depths=depths, num_heads=heads, window_size=[7, 7],
                           stochastic_depth_prob=sd_prob)
    out = scaled(fpn_channels, width_mult)
    return SwinWithFPN(swin, [embed * 2, embed * 4, embed * 8], out)


def perturb(model, seed):
    """Random but well-scaled values everywhere, so every path of the comparison carries signal."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, FrozenBatchNorm2d):
                n = m.weight.numel()
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            elif isinstance(m, nn.BatchNorm2d):
                n = m.weight.numel()
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
        cls = model.head.classification_head
        reg = model.head.regression_head
        # Scores spread around 0.05..0.9 and boxes that move: exercises thresholds, top-k and NMS.
        for layer in list(cls.conv.modules()) + list(reg.conv.modules()):
            if isinstance(layer, nn.Conv2d):
                layer.weight.normal_(0, 0.08, generator=g)
                if layer.bias is not None:
                    layer.bias.normal_(0, 0.05, generator=g)
        cls.cls_logits.weight.normal_(0, 0.05, generator=g)
        cls.cls_logits.bias.normal_(-1.5, 0.5, generator=g)
        reg.bbox_reg.weight.normal_(0, 0.02, generator=g)
        reg.bbox_reg.bias.normal_(0, 0.1, generator=g)


def images_and_targets(seed, sizes, num_classes):
    g = torch.Generator().manual_seed(seed + 2)
    images, targets = [], []
    for (h, w) in sizes:
        img = torch.rand(3, h, w, generator=g)
        # smooth structure on top of noise
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        img = (0.5 * img + 0.25 * (1 + torch.sin(6 * xx + 3 * yy))[None]).clamp(0, 1)
        k = 3
        x1 = torch.rand(k, generator=g) * w * 0.6
        y1 = torch.rand(k, generator=g) * h * 0.6
        bw = 8 + torch.rand(k, generator=g) * w * 0.4
        bh = 8 + torch.rand(k, generator=g) * h * 0.4
        boxes = torch.stack([x1, y1, (x1 + bw).clamp(max=w), (y1 + bh).clamp(max=h)], 1)
        labels = torch.randint(0, num_classes, (k,), generator=g)
        images.append(img)
        targets.append({"boxes": boxes, "labels": labels})
    return images, targets


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


def build(spec):
    torch.manual_seed(spec["seed"])
    norm = FrozenBatchNorm2d if spec.get("norm_layer", "frozen_bn") == "frozen_bn" else nn.BatchNorm2d
    wm = spec.get("width_mult", 1.0)
    if spec["backbone"].startswith("swin"):
        depths = spec.get("layers") or {"swin_t": [2, 2, 6, 2], "swin_s": [2, 2, 18, 2]}[spec["backbone"]]
        backbone = swin_backbone(wm, depths, spec.get("stochastic_depth_prob", 0.0), 256)
    else:
        backbone = resnet_backbone(spec["backbone"], wm, spec.get("groups"), spec.get("width_per_group"),
                                   spec.get("layers"), norm, spec.get("trainable_layers", 3), 256)
    model = RetinaNet(backbone, spec["num_classes"], min_size=spec["min_size"], max_size=spec["max_size"])
    perturb(model, spec["seed"])
    return model


def mtpd_config(spec):
    cfg = {k: spec[k] for k in ("backbone", "num_classes", "min_size", "max_size") if k in spec}
    for k in ("width_mult", "groups", "width_per_group", "layers", "norm_layer", "trainable_layers",
              "stochastic_depth_prob"):
        if k in spec:
            cfg[k] = spec[k]
    return cfg


def run(spec, out_dir):
    model = build(spec)
    images, targets = images_and_targets(spec["seed"], spec["image_sizes"], spec["num_classes"])
    io = OrderedDict()
    for i, (img, t) in enumerate(zip(images, targets)):
        io[f"image.{i}"] = img
        io[f"target.{i}.boxes"] = t["boxes"]
        io[f"target.{i}.labels"] = t["labels"]
    # The state as it was before the training-mode pass (BatchNorm updates its running stats there).
    sd = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        il, _ = model.transform(images)
        feats = model.backbone(il.tensors)
        for name, f in zip(["p3", "p4", "p5", "p6", "p7"], feats.values()):
            io[f"features.{name}"] = f
        dets = model(images)
        for i, d in enumerate(dets):
            io[f"det.{i}.boxes"] = d["boxes"]
            io[f"det.{i}.scores"] = d["scores"]
            io[f"det.{i}.labels"] = d["labels"]
    model.train()
    losses = model(images, [dict(t) for t in targets])
    for k, v in losses.items():
        io[f"loss.{k}"] = v.detach()
    name = spec["name"]
    save_safetensors(os.path.join(out_dir, f"{name}.weights.safetensors"), sd)
    save_safetensors(os.path.join(out_dir, f"{name}.io.safetensors"), io,
                     {"config": json.dumps(mtpd_config(spec)), "torchvision": torchvision.__version__,
                      "torch": torch.__version__, "script": "scripts/golden/torchvision_retinanet.py"})
    nd = [len(d["scores"]) for d in dets]
    print(f"{name}: {sum(v.numel() for v in sd.values())} state values, losses "
          f"{ {k: round(v.item(), 5) for k, v in losses.items()} }, detections {nd}")


SMALL = [
    dict(name="retinanet_resnet18_small", backbone="resnet18", width_mult=0.0625, num_classes=5, seed=1,
         min_size=80, max_size=128, image_sizes=[(72, 96), (88, 64)]),
    dict(name="retinanet_resnet50_small", backbone="resnet50", width_mult=0.0625, num_classes=4, seed=2,
         min_size=96, max_size=128, image_sizes=[(90, 100), (64, 120)]),
    dict(name="retinanet_resnext50_small", backbone="resnext50_32x4d", width_mult=0.0625, groups=4,
         width_per_group=16, layers=[1, 2, 2, 1], num_classes=3, seed=3, min_size=80, max_size=120,
         image_sizes=[(70, 90), (100, 75)]),
    dict(name="retinanet_resnet18_bn_small", backbone="resnet18", width_mult=0.0625, norm_layer="bn",
         trainable_layers=5, num_classes=3, seed=4, min_size=64, max_size=100, image_sizes=[(64, 80), (70, 60)]),
    dict(name="retinanet_swin_t_small", backbone="swin_t", width_mult=0.0625, layers=[2, 2, 2, 2],
         stochastic_depth_prob=0.0, num_classes=3, seed=5, min_size=96, max_size=160,
         image_sizes=[(96, 128), (120, 90)]),
]

FULL = [
    dict(name="retinanet_resnet18_fpn", backbone="resnet18", num_classes=91, seed=11, min_size=320, max_size=512,
         image_sizes=[(300, 400), (352, 288)]),
    dict(name="retinanet_resnet50_fpn", backbone="resnet50", num_classes=91, seed=12, min_size=320, max_size=512,
         image_sizes=[(300, 400), (352, 288)]),
    dict(name="retinanet_resnext50_32x4d_fpn", backbone="resnext50_32x4d", num_classes=91, seed=13, min_size=320,
         max_size=512, image_sizes=[(300, 400), (352, 288)]),
    dict(name="retinanet_swin_t_fpn", backbone="swin_t", num_classes=91, seed=14, min_size=320, max_size=512,
         stochastic_depth_prob=0.0, image_sizes=[(300, 400), (352, 288)]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", choices=["small", "full"], default="small")
    ap.add_argument("--only", default=None, help="comma-separated model names")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    specs = SMALL if a.set == "small" else FULL
    for s in specs:
        if a.only and s["name"] not in a.only.split(","):
            continue
        run(s, a.out)


if __name__ == "__main__":
    main()
