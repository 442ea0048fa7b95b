#!/usr/bin/python3
"""Writes the .pth fixtures for test/weights.test.ts with Debian's python3-torch.

Run: /usr/bin/python3 scripts/golden/make_pth_fixtures.py
Writes test/fixtures/weights/*.pth and expected.json (shapes, dtypes, values, and a conv
forward output to compare mtpd's nn.Conv2d against).
"""
import collections
import json
import os

import torch

out = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'weights')
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
expected = {'torch': torch.__version__}

# 1. A bare OrderedDict state dict of a conv + bn (num_batches_tracked is int64).
conv = torch.nn.Conv2d(3, 4, 3, padding=1)
bn = torch.nn.BatchNorm2d(4)
bn.running_mean.uniform_(-1, 1)
bn.running_var.uniform_(0.5, 2)
bn.num_batches_tracked += 7
seq = torch.nn.Sequential(collections.OrderedDict([('conv', conv), ('bn', bn)]))
torch.save(seq.state_dict(), os.path.join(out, 'conv_bn.pth'))
x = torch.arange(1 * 3 * 5 * 5, dtype=torch.float32).reshape(1, 3, 5, 5) / 75.0
with torch.no_grad():
    y = conv(x)
expected['conv_bn'] = {
    'keys': list(seq.state_dict().keys()),
    'shapes': {k: list(v.shape) for k, v in seq.state_dict().items()},
    'conv_input': x.flatten().tolist(),
    'conv_output': y.flatten().tolist(),
    'conv_output_shape': list(y.shape),
    'num_batches_tracked': int(bn.num_batches_tracked),
}

# 2. The same, nested under "model" next to training state, as training scripts save it.
torch.save({'model': conv.state_dict(), 'epoch': 3, 'lr': 0.01, 'optimizer': {'state': {}, 'param_groups': [{'lr': 0.01}]}},
           os.path.join(out, 'nested_model.pth'))

# 3. A one-entry dict (torch::pickle_load fails on these).
torch.save({'weight': torch.tensor([[1.5, -2.0], [3.25, 4.0]])}, os.path.join(out, 'one_entry.pth'))

# 4. Every dtype, a transposed (non-contiguous) view, two views of one storage, a 0-d and an empty tensor,
#    and an nn.Parameter.
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
zoo = collections.OrderedDict()
zoo['f32'] = torch.tensor([0.5, -1.25, 3.0])
zoo['f64'] = torch.tensor([1e-300, 2.5], dtype=torch.float64)
zoo['f16'] = torch.tensor([0.1, -65504.0, 6e-8], dtype=torch.float16)
zoo['bf16'] = torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16)
zoo['i64'] = torch.tensor([-(2 ** 40), 7], dtype=torch.int64)
zoo['i32'] = torch.tensor([-5, 2 ** 30], dtype=torch.int32)
zoo['i8'] = torch.tensor([-128, 127], dtype=torch.int8)
zoo['u8'] = torch.tensor([0, 255], dtype=torch.uint8)
zoo['bool'] = torch.tensor([True, False, True])
zoo['transposed'] = base.t()
zoo['row1'] = base[1]
zoo['col2'] = base[:, 2]
zoo['scalar'] = torch.tensor(2.75)
zoo['empty'] = torch.zeros(0, 4)
zoo['param'] = torch.nn.Parameter(torch.tensor([9.0, 8.0]))
torch.save(zoo, os.path.join(out, 'dtypes.pth'))
expected['dtypes'] = {k: {'shape': list(v.shape), 'values': v.detach().float().flatten().tolist() if v.dtype not in (torch.int64,) else [int(i) for i in v.flatten()]}
                      for k, v in zoo.items()}


# 5. A file that would run code under a plain pickle.load: it must be refused, never executed.
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > /tmp/mtpd-pwned',))


torch.save({'weight': torch.zeros(2), 'payload': Evil()}, os.path.join(out, 'evil.pth'))

with open(os.path.join(out, 'expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
print('wrote', sorted(os.listdir(out)))
