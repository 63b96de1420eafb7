#!/usr/bin/env python3
"""select-spam-sample.py -- choose the shipped SpamAssassin sample.

Reads the full corpus that `scripts/get-data.sh spamassassin` writes
(experiments/data/full/spamassassin/{ham,spam}) and copies a reproducible
selection to experiments/data/spamassassin-sample/{ham,spam}: in each class,
the files of at most MAX_BYTES bytes, ordered by SHA-256 of "tftx-sample:" +
their content, first PER_CLASS of them. The order depends only on the
messages, not on file names or the file system, so the same corpus always
gives the same sample. Raw messages are copied byte for byte (headers, MIME
parts, HTML and all).

usage: scripts/select-spam-sample.py [--per-class N] [--max-bytes B]
"""
import argparse
import hashlib
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL = os.path.join(ROOT, "experiments", "data", "full", "spamassassin")
OUT = os.path.join(ROOT, "experiments", "data", "spamassassin-sample")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--max-bytes", type=int, default=5000)
    a = ap.parse_args()
    if not os.path.isdir(FULL):
        sys.exit(f"select-spam-sample: {FULL} is missing: run scripts/get-data.sh spamassassin first")
    tmp = OUT + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    total = 0
    for label in ("ham", "spam"):
        src = os.path.join(FULL, label)
        ranked = []
        for name in os.listdir(src):
            data = open(os.path.join(src, name), "rb").read()
            if len(data) <= a.max_bytes:
                ranked.append((hashlib.sha256(b"tftx-sample:" + data).hexdigest(), name, data))
        ranked.sort()
        os.makedirs(os.path.join(tmp, label))
        for _, name, data in ranked[: a.per_class]:
            with open(os.path.join(tmp, label, name), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{label}: {min(a.per_class, len(ranked))} of {len(ranked)} files of at most {a.max_bytes} bytes")
    shutil.rmtree(OUT, ignore_errors=True)
    os.rename(tmp, OUT)
    print(f"{OUT}: {total} bytes")


if __name__ == "__main__":
    main()
