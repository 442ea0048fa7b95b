#!/usr/bin/python3
"""Golden values for mtpd's distillation losses and adapters (test/distill/losses.test.ts).

Run with Debian's python3 (torch 1.13):  /usr/bin/python3 scripts/golden/distill_losses.py
Writes test/fixtures/distill/losses.json. Each case has a distiller config, small random
student/teacher maps, GT boxes, the distiller's full state dict (our parameter names), and the
expected named losses, gradients w.r.t. the student maps and gradient norms of every distiller
parameter. The reference below is written from the formulas in docs/method.md (section 2 and
PKD in section 4), deliberately in the plain loop form of the original code (FGD masks box by
box), so it checks the vectorised C++ rather than repeating it.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'distill', 'losses.json')


def enc(t):
    t = t.detach().to(torch.float64).contiguous()
    return {'shape': list(t.shape), 'data': [float(x) for x in t.view(-1).tolist()]}


# ---------------------------------------------------------------- reference losses
def ref_mse(s, t, o):
    sq = (s - t) ** 2
    red = o.get('reduction', 'mean')
    v = sq.mean() if red == 'mean' else sq.sum() if red == 'sum' else sq.sum() / s.shape[0]
    return {'mse': v * o.get('loss_weight', 1.0)}


def ref_cwd(s, t, o):
    tau, w = o.get('tau', 1.0), o.get('loss_weight', 1.0)
    n, c, h, ww = s.shape
    pt = F.softmax(t.reshape(-1, h * ww) / tau, dim=1)
    loss = torch.sum(pt * F.log_softmax(t.reshape(-1, h * ww) / tau, dim=1)
                     - pt * F.log_softmax(s.reshape(-1, h * ww) / tau, dim=1)) * tau ** 2
    return {'cwd': w * loss / (c * n)}


def ref_pkd(s, t, o):
    eps = o.get('eps', 1e-6)

    def norm(f):
        n, c, h, w = f.shape
        f = f.permute(1, 0, 2, 3).reshape(c, -1)
        return (f - f.mean(dim=-1, keepdim=True)) / (f.std(dim=-1, keepdim=True) + eps)

    return {'pkd': F.mse_loss(norm(s), norm(t)) / 2 * o.get('loss_weight', 1.0)}


def ref_fgd_masks(boxes, sizes, n, h, w):
    fg = torch.zeros(n, h, w)
    bg = torch.ones(n, h, w)
    for i in range(n):
        b = boxes[i]
        ih, iw = sizes[i]
        for j in range(b.shape[0]):
            x1 = b[j, 0] / iw * w
            x2 = b[j, 2] / iw * w
            y1 = b[j, 1] / ih * h
            y2 = b[j, 3] / ih * h
            wmin, wmax = int(torch.floor(x1)), int(torch.ceil(x2))
            hmin, hmax = int(torch.floor(y1)), int(torch.ceil(y2))
            area = 1.0 / (hmax + 1 - hmin) / (wmax + 1 - wmin)
            r0, c0 = max(hmin, 0), max(wmin, 0)  # rows are y, columns are x; clipped to the map
            fg[i, r0:hmax + 1, c0:wmax + 1] = torch.clamp(fg[i, r0:hmax + 1, c0:wmax + 1], min=area)
        bg[i] = torch.where(fg[i] > 0, 0.0, 1.0)
        if torch.sum(bg[i]):
            bg[i] /= torch.sum(bg[i])
    return fg, bg


class GC(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_mask_s = nn.Conv2d(c, 1, 1)
        self.conv_mask_t = nn.Conv2d(c, 1, 1)
        self.channel_add_conv_s = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.LayerNorm([c // 2, 1, 1]), nn.ReLU(),
                                                nn.Conv2d(c // 2, c, 1))
        self.channel_add_conv_t = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.LayerNorm([c // 2, 1, 1]), nn.ReLU(),
                                                nn.Conv2d(c // 2, c, 1))


def ref_fgd(s, t, o, mod, boxes, sizes):
    temp = o.get('temp', 0.5)
    n, c, h, w = s.shape

    def att(f):
        v = f.abs()
        sa = h * w * F.softmax((v.mean(dim=1) / temp).view(n, -1), dim=1).view(n, h, w)
        ca = c * F.softmax(v.mean(dim=2).mean(dim=2) / temp, dim=1)
        return sa, ca

    sa_t, ca_t = att(t)
    sa_s, ca_s = att(s)
    fg, bg = ref_fgd_masks(boxes, sizes, n, h, w)
    fg, bg = fg.unsqueeze(1), bg.unsqueeze(1)
    wt = torch.sqrt(sa_t).unsqueeze(1) * torch.sqrt(ca_t)[:, :, None, None]
    fea_t, fea_s = t * wt, s * wt
    fg_loss = torch.sum((fea_s * torch.sqrt(fg) - fea_t * torch.sqrt(fg)) ** 2) / n
    bg_loss = torch.sum((fea_s * torch.sqrt(bg) - fea_t * torch.sqrt(bg)) ** 2) / n
    at_loss = torch.sum(torch.abs(ca_s - ca_t)) / n + torch.sum(torch.abs(sa_s - sa_t)) / n

    def pool(x, conv):
        m = F.softmax(conv(x).view(n, 1, h * w), dim=2).unsqueeze(-1)  # (N, 1, HW, 1)
        return torch.matmul(x.view(n, c, h * w).unsqueeze(1), m).view(n, c, 1, 1)

    out_s = s + mod.channel_add_conv_s(pool(s, mod.conv_mask_s))
    out_t = t + mod.channel_add_conv_t(pool(t, mod.conv_mask_t))
    gl_loss = torch.sum((out_s - out_t) ** 2) / n
    return {'fgd.fg': fg_loss * o.get('alpha_fgd', 1e-3), 'fgd.bg': bg_loss * o.get('beta_fgd', 5e-4),
            'fgd.at': at_loss * o.get('gamma_fgd', 1e-3), 'fgd.gl': gl_loss * o.get('lambda_fgd', 5e-6)}


class Gen(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.generation = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))


def ref_mgd(s, t, o, mod, draws):
    n, c, h, w = t.shape
    lam = o.get('lambda_mgd', 0.65)
    g = torch.Generator().manual_seed(o['seed'])
    out = None
    for _ in range(draws):  # the k-th call uses the k-th draw of the loss's generator
        mat = torch.rand((n, 1, h, w), generator=g)
        mat = torch.where(mat > 1 - lam, 0, 1)
        out = torch.sum((mod.generation(s * mat) - t) ** 2) / n
    return {'mgd': out * o.get('alpha_mgd', 2e-5)}


# ---------------------------------------------------------------- cases
def adapter(s, ct, th, tw, prefix, state):
    if s.shape[1] != ct:
        conv = nn.Conv2d(s.shape[1], ct, 1)
        state[prefix + 'adapter.conv.weight'] = conv.weight
        state[prefix + 'adapter.conv.bias'] = conv.bias
        s = conv(s)
    if s.shape[2:] != (th, tw):
        s = F.interpolate(s, size=(th, tw), mode='bilinear', align_corners=False)
    return s


def perturb(mod, scale=0.3):
    with torch.no_grad():
        for p in mod.parameters():
            p.add_(torch.randn_like(p) * scale)


def run_case(name, pairs, shapes, n, boxes, sizes, seed):
    """pairs: list of (pair name, student tap, teacher tap, [(type, weight, options)])."""
    torch.manual_seed(seed)
    student, teacher = {}, {}
    for tap, (cs, hs, ws, ct, ht, wt) in shapes.items():
        student[tap] = (torch.randn(n, cs, hs, ws) * 1.5).requires_grad_(True)
        teacher[tap] = torch.randn(n, ct, ht, wt) * 2 + 0.3
    state = {}
    losses = {}
    config_pairs = []
    for pname, stap, ttap, loss_list in pairs:
        prefix = f'pairs.{pname}.'
        t = teacher[ttap]
        s = adapter(student[stap], t.shape[1], t.shape[2], t.shape[3], prefix, state)
        entries = []
        for ltype, weight, o in loss_list:
            entries.append({'type': ltype, 'weight': weight, 'options': o})
            if ltype == 'mse':
                terms = ref_mse(s, t, o)
            elif ltype == 'cwd':
                terms = ref_cwd(s, t, o)
            elif ltype == 'pkd':
                terms = ref_pkd(s, t, o)
            elif ltype == 'fgd':
                mod = GC(t.shape[1])
                perturb(mod)
                for k, v in mod.named_parameters():
                    state[prefix + 'fgd.' + k] = v
                terms = ref_fgd(s, t, o, mod, boxes, sizes)
                fgd_mod = mod
            elif ltype == 'mgd':
                mod = Gen(t.shape[1])
                for k, v in mod.named_parameters():
                    state[prefix + 'mgd.' + k] = v
                terms = ref_mgd(s, t, o, mod, 1)
            for k, v in terms.items():
                losses[f'distill.{pname}.{k}'] = v * weight
        config_pairs.append({'name': pname, 'student': stap, 'teacher': ttap,
                             'student_channels': shapes[stap][0], 'teacher_channels': shapes[ttap][3],
                             'losses': entries})
    params = {k: v for k, v in state.items() if isinstance(v, nn.Parameter)}
    total = sum(losses.values())
    total.backward()
    case = {
        'name': name,
        'config': {'seed': 1, 'pairs': config_pairs},
        'student': {k: enc(v) for k, v in student.items()},
        'teacher': {k: enc(v) for k, v in teacher.items()},
        'context': {'boxes': [enc(b) for b in boxes], 'imageSizes': sizes},
        'state': {k: enc(v) for k, v in state.items()},
        'expected': {
            'losses': {k: float(v) for k, v in losses.items()},
            'total': float(total),
            'studentGrads': {k: enc(v.grad) for k, v in student.items() if v.grad is not None},
            'paramGradNorms': {k: float(v.grad.norm()) for k, v in params.items()},
        },
    }
    return case


def main():
    n = 2
    boxes = [torch.tensor([[3.0, 4.5, 20.0, 30.0], [10.0, 0.0, 40.0, 12.25]]), torch.tensor([[0.0, 0.0, 16.0, 48.0]])]
    sizes = [[48, 40], [48, 40]]  # (H, W) of each image; maps are 6x5 (stride 8)
    cases = []
    same = {'p3': (4, 6, 5, 4, 6, 5)}
    cases.append(run_case('mse identity, mean', [('p3', 'p3', 'p3', [('mse', 1.0, {})])], same, n, boxes, sizes, 1))
    cases.append(run_case('mse sum, loss_weight and pair weight',
                          [('p3', 'p3', 'p3', [('mse', 2.0, {'reduction': 'sum', 'loss_weight': 0.5})])], same, n,
                          boxes, sizes, 2))
    cases.append(run_case('mse batchmean', [('p3', 'p3', 'p3', [('mse', 1.0, {'reduction': 'batchmean'})])], same, n,
                          boxes, sizes, 3))
    cases.append(run_case('mse conv1x1 adapter', [('p3', 'p3', 'p3', [('mse', 1.0, {})])],
                          {'p3': (3, 6, 5, 4, 6, 5)}, n, boxes, sizes, 4))
    cases.append(run_case('mse resize adapter', [('p3', 'p3', 'p3', [('mse', 1.0, {})])],
                          {'p3': (4, 3, 3, 4, 6, 5)}, n, boxes, sizes, 5))
    cases.append(run_case('mse conv1x1+resize adapter', [('p3', 'p3', 'p3', [('mse', 3.0, {})])],
                          {'p3': (3, 3, 3, 4, 6, 5)}, n, boxes, sizes, 6))
    cases.append(run_case('cwd tau 2, loss_weight 10', [('p3', 'p3', 'p3', [('cwd', 1.0, {'tau': 2.0, 'loss_weight': 10.0})])],
                          {'p3': (3, 6, 5, 4, 6, 5)}, n, boxes, sizes, 7))
    cases.append(run_case('pkd loss_weight 6, resize', [('p3', 'p3', 'p3', [('pkd', 1.0, {'loss_weight': 6.0})])],
                          {'p3': (4, 3, 3, 4, 6, 5)}, n, boxes, sizes, 8))
    cases.append(run_case('fgd defaults', [('p3', 'p3', 'p3', [('fgd', 1.0, {})])], same, n, boxes, sizes, 9))
    cases.append(run_case('fgd weights and temp, conv adapter',
                          [('p3', 'p3', 'p3', [('fgd', 2.0, {'temp': 0.8, 'alpha_fgd': 0.5, 'beta_fgd': 0.25,
                                                              'gamma_fgd': 0.125, 'lambda_fgd': 0.0625})])],
                          {'p3': (3, 6, 5, 4, 6, 5)}, n, boxes, sizes, 10))
    cases.append(run_case('mgd', [('p3', 'p3', 'p3', [('mgd', 1.0, {'alpha_mgd': 2e-3, 'lambda_mgd': 0.65, 'seed': 1234})])],
                          same, n, boxes, sizes, 11))
    cases.append(run_case('two levels, two losses on one pair',
                          [('p3', 'p3', 'p3', [('mse', 1.0, {}), ('cwd', 0.5, {})]),
                           ('p4', 'p4', 'p4', [('pkd', 2.0, {})])],
                          {'p3': (3, 6, 5, 4, 6, 5), 'p4': (3, 3, 3, 4, 3, 3)}, n, boxes, sizes, 12))
    # The adapter's bilinear resize from 3x3 to 6x5 distills p3 of a low-resolution student
    # from p3 of a teacher at twice the input size; the cross-level pair p4 -> p3 does the same.
    cases.append(run_case('cross-level pair p4 -> p3',
                          [('p4-p3', 'p4', 'p3', [('mse', 1.0, {})])],
                          {'p3': (4, 6, 5, 4, 6, 5), 'p4': (3, 3, 3, 4, 3, 3)}, n, boxes, sizes, 13))

    # FGD masks: edges, overlap (smaller wins), fractional extents, an empty image, a full image.
    mask_boxes = [torch.tensor([[0.0, 0.0, 40.0, 48.0], [9.0, 9.0, 15.0, 15.0], [33.5, 40.1, 40.0, 48.0]]),
                  torch.zeros(0, 4), torch.tensor([[0.0, 0.0, 39.0, 47.0]])]
    mask_sizes = [[48, 40], [48, 40], [48, 40]]
    fg, bg = ref_fgd_masks(mask_boxes, mask_sizes, 3, 6, 5)
    masks = {'boxes': [enc(b) for b in mask_boxes], 'imageSizes': mask_sizes, 'n': 3, 'h': 6, 'w': 5,
             'fg': enc(fg), 'bg': enc(bg)}

    with open(OUT, 'w') as f:
        json.dump({'generator': 'scripts/golden/distill_losses.py', 'torch': torch.__version__, 'cases': cases,
                   'masks': masks}, f)
    print(f'wrote {len(cases)} cases to {os.path.normpath(OUT)}')


if __name__ == '__main__':
    main()
