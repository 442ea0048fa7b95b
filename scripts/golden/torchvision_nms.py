#!/usr/bin/python3
"""Golden NMS results from torchvision 0.14 (Debian's /usr/bin/python3) for test/ops/nms.test.ts:

  /usr/bin/python3 scripts/golden/torchvision_nms.py

Writes test/fixtures/ops/nms.safetensors: seeded box sets (clustered, so boxes overlap a lot; some
degenerate; tied scores), each with the indices torchvision.ops.nms and torchvision.ops.batched_nms
keep at two IoU thresholds. Sizes on both sides of batched_nms's 4000-coordinate switch between one
NMS with the coordinate trick and NMS per class.
"""
import json
import os

import torch
from torchvision.ops import batched_nms, nms

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '..', 'test', 'fixtures', 'ops', 'nms.safetensors')


def boxes_of(g, n, dtype):
    centers = torch.rand(max(1, n // 40), 2, generator=g) * 200
    c = centers[torch.randint(0, centers.shape[0], (n,), generator=g)] + torch.randn(n, 2, generator=g) * 6
    wh = torch.rand(n, 2, generator=g) * 40 + 1
    wh[torch.rand(n, generator=g) < 0.02] = 0  # degenerate boxes (zero area)
    b = torch.cat([c - wh / 2, c + wh / 2], 1)
    return b.to(dtype)


DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64'}


def save_safetensors(tensors, path, metadata):
    """The safetensors format by hand (no Python safetensors package here): header JSON, then the bytes."""
    header, blobs, off = {'__metadata__': metadata}, [], 0
    for k, v in tensors.items():
        data = v.contiguous().numpy().tobytes()
        header[k] = {'dtype': DTYPES[v.dtype], 'shape': list(v.shape), 'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(len(h).to_bytes(8, 'little'))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    g = torch.Generator().manual_seed(0)
    tensors, cases = {}, []
    for n, classes, dtype in [(1, 1, torch.float32), (60, 3, torch.float32), (900, 8, torch.float32), (3000, 8, torch.float32), (400, 5, torch.float64)]:
        b = boxes_of(g, n, dtype)
        s = torch.rand(n, generator=g).to(dtype)
        s[torch.rand(n, generator=g) < 0.1] = 0.5  # ties
        idxs = torch.randint(0, classes, (n,), generator=g)
        name = f'n{n}_{str(dtype).split(".")[-1]}'
        tensors[f'{name}.boxes'], tensors[f'{name}.scores'], tensors[f'{name}.idxs'] = b, s, idxs
        for thr in (0.5, 0.7):
            tensors[f'{name}.nms{thr}'] = nms(b, s, thr)
            tensors[f'{name}.batched{thr}'] = batched_nms(b, s, idxs, thr)
        cases.append({'name': name, 'thresholds': [0.5, 0.7]})
    save_safetensors(tensors, OUT, {'cases': json.dumps(cases), 'made_by': 'scripts/golden/torchvision_nms.py', 'torchvision': __import__('torchvision').__version__})
    print(f'wrote {OUT}: {len(cases)} cases')


if __name__ == '__main__':
    main()
