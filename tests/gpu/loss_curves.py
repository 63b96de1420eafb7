#!/usr/bin/env python3
"""loss_curves.py -- compare the training-loss curves of two tftx results logs.

    loss_curves.py REFERENCE.msgpack OTHER.msgpack --rtol R

Each log holds one run whose record has "train_loss": [[step, loss], ...]
(train.log_every = 1 gives every step). Prints both curves side by side
with the relative difference per step, and exits 1 when a step is missing
from either log or differs by more than R relative to the reference.
The MessagePack reader below is minimal (the types tftx writes) so the
script needs nothing beyond the Python standard library.
"""
import argparse
import struct
import sys


class Reader:
    def __init__(self, data):
        self.d, self.i = data, 0

    def take(self, n):
        b = self.d[self.i:self.i + n]
        if len(b) < n:
            raise EOFError
        self.i += n
        return b

    def u(self, fmt):
        return struct.unpack(">" + fmt, self.take(struct.calcsize(">" + fmt)))[0]

    def obj(self):
        t = self.take(1)[0]
        if t <= 0x7F: return t
        if t >= 0xE0: return t - 0x100
        if 0x80 <= t <= 0x8F: return self.map(t & 0x0F)
        if 0x90 <= t <= 0x9F: return [self.obj() for _ in range(t & 0x0F)]
        if 0xA0 <= t <= 0xBF: return self.take(t & 0x1F).decode("utf-8", "replace")
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if t in simple: return simple[t]
        if t in (0xC4, 0xC5, 0xC6): return self.take(self.u({0xC4: "B", 0xC5: "H", 0xC6: "I"}[t]))
        if t in (0xC7, 0xC8, 0xC9):
            n = self.u({0xC7: "B", 0xC8: "H", 0xC9: "I"}[t]); self.take(1); return self.take(n)
        if t == 0xCA: return self.u("f")
        if t == 0xCB: return self.u("d")
        ints = {0xCC: "B", 0xCD: "H", 0xCE: "I", 0xCF: "Q", 0xD0: "b", 0xD1: "h", 0xD2: "i", 0xD3: "q"}
        if t in ints: return self.u(ints[t])
        if t in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
            self.take(1); return self.take({0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[t])
        if t in (0xD9, 0xDA, 0xDB):
            return self.take(self.u({0xD9: "B", 0xDA: "H", 0xDB: "I"}[t])).decode("utf-8", "replace")
        if t in (0xDC, 0xDD): return [self.obj() for _ in range(self.u("H" if t == 0xDC else "I"))]
        if t in (0xDE, 0xDF): return self.map(self.u("H" if t == 0xDE else "I"))
        raise ValueError("msgpack type 0x%02x at byte %d" % (t, self.i - 1))

    def map(self, n):
        out = {}
        for _ in range(n):
            k = self.obj()
            out[k if isinstance(k, (str, int)) else repr(k)] = self.obj()
        return out


def find(obj, key):
    """The first value of `key` anywhere in nested maps and lists."""
    if isinstance(obj, dict):
        if key in obj: return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for v in obj:
            r = find(v, key)
            if r is not None: return r
    return None


def curve(path):
    data = open(path, "rb").read()
    r, curves = Reader(data), []
    while r.i < len(data):
        try:
            rec = r.obj()
        except (EOFError, ValueError):
            break  # a log may end in a header or padding tftx writes; the records before count
        c = find(rec, "train_loss")
        if isinstance(c, list) and c:
            curves.append({int(s): float(l) for s, l in c})
    if not curves:
        sys.exit("%s: no record with train_loss" % path)
    return curves[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("other")
    ap.add_argument("--rtol", type=float, required=True)
    a = ap.parse_args()
    ref, oth = curve(a.reference), curve(a.other)
    bad = 0
    print("%5s %14s %14s %10s" % ("step", "reference", "other", "rel.diff"))
    for s in sorted(set(ref) | set(oth)):
        if s not in ref or s not in oth:
            print("%5d missing in %s" % (s, "reference" if s not in ref else "other"))
            bad += 1
            continue
        rel = abs(oth[s] - ref[s]) / max(abs(ref[s]), 1e-30)
        flag = "" if rel <= a.rtol else "  > %g" % a.rtol
        bad += rel > a.rtol
        print("%5d %14.8f %14.8f %10.2e%s" % (s, ref[s], oth[s], rel, flag))
    print("%s: %d step%s beyond rtol %g" % ("FAIL" if bad else "ok", bad, "" if bad == 1 else "s", a.rtol))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
