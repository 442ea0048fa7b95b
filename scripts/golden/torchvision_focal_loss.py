#!/usr/bin/python3
"""Golden sigmoid focal loss values and gradients from torchvision 0.14 (Debian's /usr/bin/python3)
for test/ops/focal_loss.test.ts:

  /usr/bin/python3 scripts/golden/torchvision_focal_loss.py

Writes test/fixtures/ops/focal_loss.safetensors: seeded (A, K) logits with a class per row (>= 0
the one-hot target's class, -1 background, -2 ignored, as RetinaNet's matcher gives them), and
torchvision.ops.sigmoid_focal_loss summed over the rows that are not ignored, with the gradient of
that sum w.r.t. the logits (zero on ignored rows), computed in float64 from the same inputs. Cases:
RetinaNet's alpha 0.25 / gamma 2, gamma 0 (alpha-weighted BCE), gamma 1.5, no alpha weighting
(alpha -1), logits spread to +-30 (saturated sigmoids), float32 and float64 inputs.
"""
import json
import os

import torch
from torchvision.ops import sigmoid_focal_loss

from torchvision_nms import save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'test', 'fixtures', 'ops', 'focal_loss.safetensors')


def reference(x, classes, alpha, gamma):
    """torchvision's loss on the non-ignored rows, summed, and d sum / d x, both in float64."""
    x64 = x.detach().to(torch.float64, copy=True).requires_grad_()
    target = torch.zeros_like(x64)
    fg = classes >= 0
    target[fg.nonzero().squeeze(1), classes[fg]] = 1.0
    valid = classes != -2
    loss = sigmoid_focal_loss(x64[valid], target[valid], alpha=alpha, gamma=gamma, reduction='sum')
    loss.backward()
    return loss.detach(), x64.grad


def main():
    g = torch.Generator().manual_seed(0)
    tensors, cases = {}, []
    specs = [
        ('retinanet', 300, 91, 0.25, 2.0, 4.0, torch.float32),
        ('gamma0', 120, 7, 0.25, 0.0, 4.0, torch.float32),
        ('gamma1.5', 120, 7, 0.25, 1.5, 4.0, torch.float32),
        ('no_alpha', 120, 7, -1.0, 2.0, 4.0, torch.float32),
        ('saturated', 200, 5, 0.25, 2.0, 30.0, torch.float32),
        ('float64', 150, 11, 0.25, 2.0, 6.0, torch.float64),
    ]
    for name, rows, k, alpha, gamma, spread, dtype in specs:
        # RetinaNet's logits start near log(0.01 / 0.99) = -4.6; spread them around it
        x = (torch.randn(rows, k, generator=g) * spread / 2 - 2.0).clamp(-spread, spread).to(dtype)
        classes = torch.randint(0, k, (rows,), generator=g)
        r = torch.rand(rows, generator=g)
        classes[r < 0.7] = -1
        classes[r < 0.1] = -2
        loss, grad = reference(x, classes, alpha, gamma)
        tensors[f'{name}.logits'], tensors[f'{name}.classes'] = x, classes
        tensors[f'{name}.loss'], tensors[f'{name}.grad'] = loss.reshape(1), grad
        cases.append({'name': name, 'alpha': alpha, 'gamma': gamma})
    save_safetensors(tensors, OUT, {'cases': json.dumps(cases), 'made_by': 'scripts/golden/torchvision_focal_loss.py',
                                    'torchvision': __import__('torchvision').__version__})
    print(f'wrote {OUT}: {len(cases)} cases')


if __name__ == '__main__':
    main()
