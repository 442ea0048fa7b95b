#!/usr/bin/python3
"""Seeded small backbone checkpoints in the layouts `student.backbone` reads, for
test/weights/backbone-checkpoint.test.ts (Debian's /usr/bin/python3 with torch/torchvision 0.14):

  /usr/bin/python3 scripts/golden/backbone_checkpoints.py

Writes test/fixtures/weights/backbone_*.pth (torch.save):
  resnet18_tv    torchvision's ResNet-18 state dict at width 1/16 (as resnet18-f37072fd.pth: fc included)
  swin_tv        torchvision's Swin-T at width 1/16, depths 2-2-2-2 (as swin_t-704ceda3.pth: norm, head included)
  swin_official  the same weights under the official Swin release's / timm's names (patch_embed.proj,
                 layers.i.blocks.j.attn.qkv, mlp.fc1, layers.i.downsample, relative_position_index buffers)
  swin_mmdet     the same weights as the backbone of an mmdetection detector (backbone.stages.i...,
                 attn.w_msa, ffn.layers, per-stage out norms norm0..3, neck.* / bbox_head.* tensors), with
                 PatchMerging's weights in nn.Unfold's order
and backbone_expected.json: per fixture the torchvision names and a checksum of every tensor the
backbone must end up with. The unfold order is checked here: mmdetection's PatchMerging computation
(unfold 2x2, LayerNorm, Linear) with the reordered weights equals torchvision's PatchMerging.
"""
import json
import math
import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock
from torchvision.models.swin_transformer import SwinTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'test', 'fixtures', 'weights')
import importlib.util
spec_ = importlib.util.spec_from_file_location('tvr', os.path.join(HERE, 'torchvision_retinanet.py'))
tvr = importlib.util.module_from_spec(spec_)
spec_.loader.exec_module(tvr)


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point and 'relative_position_index' not in k:
                v.copy_(torch.randn(v.shape, generator=g) * 0.2 + (1.0 if k.endswith('running_var') else 0.0))


def swin_official(sd):
    out = OrderedDict()
    for k, v in sd.items():
        p = k.split('.')
        if k.startswith('features.0.0.'):
            out['patch_embed.proj.' + p[-1]] = v
        elif k.startswith('features.0.2.'):
            out['patch_embed.norm.' + p[-1]] = v
        elif k.startswith('features.'):
            f = int(p[1])
            if f % 2 == 1:
                rest = '.'.join(p[3:]).replace('mlp.0.', 'mlp.fc1.').replace('mlp.3.', 'mlp.fc2.')
                out[f'layers.{(f - 1) // 2}.blocks.{p[2]}.{rest}'] = v
            else:
                out[f'layers.{(f - 2) // 2}.downsample.' + '.'.join(p[2:])] = v
        else:
            out[k] = v  # norm.*, head.*
    for k in list(out):
        if k.endswith('attn.relative_position_bias_table'):
            out[k.replace('relative_position_bias_table', 'relative_position_index')] = torch.zeros(49, dtype=torch.int64)
    return out


def to_unfold_order(t):
    """(..., 4C) torchvision concat order (q * C + c, q = i + 2 j) -> nn.Unfold's (c * 4 + i * 2 + j)."""
    C = t.shape[-1] // 4
    out = torch.empty_like(t)
    for q in range(4):
        i, j = q % 2, q // 2
        for c in range(C):
            out[..., c * 4 + i * 2 + j] = t[..., q * C + c]
    return out


def swin_mmdet(sd, dims):
    out = OrderedDict()
    for k, v in sd.items():
        p = k.split('.')
        if k.startswith('features.0.0.'):
            out['backbone.patch_embed.projection.' + p[-1]] = v
        elif k.startswith('features.0.2.'):
            out['backbone.patch_embed.norm.' + p[-1]] = v
        elif k.startswith('features.'):
            f = int(p[1])
            if f % 2 == 1:
                rest = '.'.join(p[3:]).replace('attn.', 'attn.w_msa.').replace('mlp.0.', 'ffn.layers.0.0.').replace('mlp.3.', 'ffn.layers.1.')
                out[f'backbone.stages.{(f - 1) // 2}.blocks.{p[2]}.{rest}'] = v
            else:
                out[f'backbone.stages.{(f - 2) // 2}.downsample.' + '.'.join(p[2:])] = to_unfold_order(v)
    for i, d in enumerate(dims):
        out[f'backbone.norm{i}.weight'] = torch.ones(d)
        out[f'backbone.norm{i}.bias'] = torch.zeros(d)
    out['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, dims[1], 1, 1)
    out['bbox_head.retina_cls.weight'] = torch.zeros(9 * 80, 4, 1, 1)
    return out


def check_unfold(sd_tv, swin):
    """mmdetection's PatchMerging (unfold 2x2 -> LayerNorm(4C) -> Linear) with reordered weights = torchvision's."""
    pm = swin.features[2]
    C = pm.reduction.in_features // 4
    x = torch.randn(2, 6, 8, C, generator=torch.Generator().manual_seed(3))
    ref = pm(x)
    u = F.unfold(x.permute(0, 3, 1, 2), kernel_size=2, stride=2).transpose(1, 2)  # (B, L, 4C), c * 4 + i * 2 + j
    u = F.layer_norm(u, (4 * C,), to_unfold_order(pm.norm.weight), to_unfold_order(pm.norm.bias), pm.norm.eps)
    y = F.linear(u, to_unfold_order(pm.reduction.weight)).view(2, 3, 4, 2 * C)
    err = (y - ref).abs().max().item()
    assert err < 1e-5, err
    return err


def checksum(t):
    t = t.double().flatten()
    w = torch.arange(1, t.numel() + 1, dtype=torch.float64)
    return float((t * torch.cos(w)).sum())


def main():
    torch.manual_seed(0)
    resnet = tvr.NarrowResNet(BasicBlock, [2, 2, 2, 2], 0.0625, norm_layer=nn.BatchNorm2d)
    randomize(resnet, 1)
    sd_r = resnet.state_dict()
    embed = tvr.scaled(96, 0.0625)
    swin = SwinTransformer(patch_size=[4, 4], embed_dim=embed, depths=[2, 2, 2, 2],
                           num_heads=[tvr.scaled(h, 0.0625) for h in (3, 6, 12, 24)], window_size=[7, 7], num_classes=10)
    randomize(swin, 2)
    sd_s = swin.state_dict()
    err = check_unfold(sd_s, swin)
    files = {
        'resnet18_tv': sd_r,
        'swin_tv': sd_s,
        'swin_official': swin_official(sd_s),
        'swin_mmdet': swin_mmdet(sd_s, [embed, embed * 2, embed * 4, embed * 8]),
    }
    expected = {'script': 'scripts/golden/backbone_checkpoints.py', 'unfold_check_max_err': err,
                'detector': {'resnet18_tv': {'arch': 'retinanet_resnet18_fpn', 'width_mult': 0.0625},
                             'swin': {'arch': 'retinanet_swin_t_fpn', 'width_mult': 0.0625, 'layers': [2, 2, 2, 2]}},
                'tensors': {}}
    for name, sd in files.items():
        torch.save(sd, os.path.join(OUT, f'backbone_{name}.pth'))
    for name, sd in (('resnet18', sd_r), ('swin', sd_s)):
        expected['tensors'][name] = {
            'backbone.body.' + k: checksum(v) for k, v in sd.items()
            if not k.startswith(('fc.', 'head.', 'norm.')) and 'relative_position_index' not in k and 'num_batches_tracked' not in k}
    with open(os.path.join(OUT, 'backbone_expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)
    print({k: len(v) for k, v in files.items()}, 'unfold err', err)


if __name__ == '__main__':
    main()
