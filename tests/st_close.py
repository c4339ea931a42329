#!/usr/bin/env python3
"""st_close.py A.safetensors B.safetensors RTOL: exit 0 when the two files
hold the same tensors (names, shapes, dtypes) and every element pair agrees
to |a - b| <= RTOL * (|b| + 1e-3); prints the largest such ratio. For the
data-parallel tests, which compare runs whose sums were added in another
order. Standard library only."""
import array
import json
import struct
import sys


def load(path):
    with open(path, 'rb') as f:
        raw = f.read()
    n = struct.unpack('<Q', raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, t in head.items():
        if name == '__metadata__':
            continue
        a = array.array({'F32': 'f', 'F64': 'd'}[t['dtype']])
        s, e = t['data_offsets']
        a.frombytes(body[s:e])
        out[name] = (t['dtype'], tuple(t['shape']), a)
    return out


a, b, rtol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if a.keys() != b.keys() or any(a[k][:2] != b[k][:2] for k in a):
    print('different tensors')
    sys.exit(1)
worst = max((abs(x - y) / (abs(y) + 1e-3) for k in a for x, y in zip(a[k][2], b[k][2])), default=0.0)
print('%.3g' % worst)
sys.exit(0 if worst <= rtol else 1)
