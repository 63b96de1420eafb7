#!/usr/bin/python3
"""
schedules.py -- reference learning rates from torch.optim.lr_scheduler for
host/schedule.c, written to tests/reference/fixtures/schedules.txt, which
tests/optimizers/test_schedule.c compares against (1e-9 relative). The test
suite itself never needs PyTorch.

Regenerate (Debian's python3-torch 1.13 produced the committed file):

    /usr/bin/python3 tests/reference/schedules.py [tests/reference/fixtures]

Each case drives a real scheduler the way a training loop does: read the lr
of the param group, optimizer.step(), scheduler.step(); so the value written
for update k (1-based) is the lr in force during the k-th optimizer.step().

StepLR and ExponentialLR are torch's own. The transformers schedules run
through torch's LambdaLR with lambdas written here from the formulas of
transformers.optimization (get_constant_schedule_with_warmup,
get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup and its
min-lr variant, get_polynomial_decay_schedule_with_warmup,
get_inverse_sqrt_schedule), because transformers is not installed here.
Warmup before StepLR/ExponentialLR is tftx's own definition (linear warmup,
then the torch formula counted from the end of the warmup), also written
as a LambdaLR lambda below.
"""
import math
import os
import sys

import torch

# ---------------------------------------------------------------- lambdas
# Each returns the multiplier of the base lr at scheduler step `t`
# (0 for the first update).


def warmup(t, w):
    return float(t) / float(max(1, w))


def constant_with_warmup(w):
    return lambda t: warmup(t, w) if t < w else 1.0


def linear_with_warmup(w, total):
    def f(t):
        if t < w:
            return warmup(t, w)
        return max(0.0, float(total - t) / float(max(1, total - w)))
    return f


def cosine_with_warmup(w, total, min_lr_rate=0.0, num_cycles=0.5):
    # transformers: get_cosine_schedule_with_warmup (min_lr_rate = 0) and
    # get_cosine_with_min_lr_schedule_with_warmup
    def f(t):
        if t < w:
            return warmup(t, w)
        progress = float(t - w) / float(max(1, total - w))
        factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        factor = factor * (1 - min_lr_rate) + min_lr_rate
        return max(0.0, factor)
    return f


def polynomial_with_warmup(w, total, lr_init, lr_end, power):
    def f(t):
        if t < w:
            return warmup(t, w)
        elif t > total:
            return lr_end / lr_init
        lr_range = lr_init - lr_end
        decay_steps = total - w
        pct_remaining = 1 - (t - w) / decay_steps
        decay = lr_range * pct_remaining ** power + lr_end
        return decay / lr_init
    return f


def inverse_sqrt(w, timescale=None):
    if timescale is None:
        timescale = w or 10_000

    def f(t):
        if t < w:
            return warmup(t, w)
        shift = timescale - w
        return 1.0 / math.sqrt((t + shift) / timescale)
    return f


def step_with_warmup(w, step_size, gamma):
    return lambda t: warmup(t, w) if t < w else gamma ** ((t - w) // step_size)


def exponential_with_warmup(w, gamma):
    return lambda t: warmup(t, w) if t < w else gamma ** (t - w)


# ---------------------------------------------------------------- cases
# spec: the tftx schedule section (missing keys take the defaults below);
# the warmup W the lambdas get is computed as tftx does it.

DEFAULTS = dict(kind="constant", warmup_steps=0, warmup_ratio=0.0, min_lr=0.0, gamma=0.1, step_size=1, power=1.0)

CASES = [
    ("constant", 0.1, 50, {}),
    ("constant_warmup", 0.1, 50, {"warmup_steps": 8}),
    ("linear", 0.1, 80, {"kind": "linear"}),
    ("linear_warmup", 3e-4, 100, {"kind": "linear", "warmup_steps": 10}),
    ("linear_warmup_ratio", 3e-4, 95, {"kind": "linear", "warmup_ratio": 0.1}),
    ("cosine", 0.1, 80, {"kind": "cosine"}),
    ("cosine_warmup", 1e-3, 120, {"kind": "cosine", "warmup_steps": 20}),
    ("cosine_min_lr", 1e-3, 120, {"kind": "cosine", "warmup_steps": 20, "min_lr": 1e-5}),
    ("step", 0.1, 60, {"kind": "step", "step_size": 7, "gamma": 0.5}),
    ("step_warmup", 0.1, 60, {"kind": "step", "step_size": 10, "gamma": 0.3, "warmup_steps": 5}),
    ("exponential", 0.1, 60, {"kind": "exponential", "gamma": 0.95}),
    ("exponential_warmup", 0.1, 60, {"kind": "exponential", "gamma": 0.9, "warmup_ratio": 0.2}),
    ("polynomial", 1e-3, 100, {"kind": "polynomial", "warmup_steps": 10, "min_lr": 1e-7}),
    ("polynomial_power", 1e-3, 100, {"kind": "polynomial", "warmup_steps": 10, "min_lr": 1e-5, "power": 2.0}),
    ("polynomial_sqrt_to_0", 0.5, 64, {"kind": "polynomial", "power": 0.5}),
    ("inverse_sqrt", 1e-3, 100, {"kind": "inverse_sqrt", "warmup_steps": 16}),
    ("inverse_sqrt_no_warmup", 1e-3, 100, {"kind": "inverse_sqrt"}),
]

# Updates after total_steps are written too where tftx promises to match
# transformers there (cosine is held at min_lr by tftx instead).
BEYOND = 5


def make_scheduler(opt, base, total, spec):
    kind = spec["kind"]
    w = spec["warmup_steps"] if spec["warmup_steps"] > 0 else math.ceil(spec["warmup_ratio"] * total)
    LambdaLR = torch.optim.lr_scheduler.LambdaLR
    if kind == "constant":
        return LambdaLR(opt, constant_with_warmup(w))
    if kind == "linear":
        return LambdaLR(opt, linear_with_warmup(w, total))
    if kind == "cosine":
        return LambdaLR(opt, cosine_with_warmup(w, total, spec["min_lr"] / base))
    if kind == "step":
        if w == 0:
            return torch.optim.lr_scheduler.StepLR(opt, step_size=spec["step_size"], gamma=spec["gamma"])
        return LambdaLR(opt, step_with_warmup(w, spec["step_size"], spec["gamma"]))
    if kind == "exponential":
        if w == 0:
            return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=spec["gamma"])
        return LambdaLR(opt, exponential_with_warmup(w, spec["gamma"]))
    if kind == "polynomial":
        return LambdaLR(opt, polynomial_with_warmup(w, total, base, spec["min_lr"], spec["power"]))
    if kind == "inverse_sqrt":
        return LambdaLR(opt, inverse_sqrt(w))
    raise ValueError(kind)


def lrs(base, total, spec):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make_scheduler(opt, base, total, spec)
    n = total + (0 if spec["kind"] == "cosine" else BEYOND)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                "fixtures")
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "schedules.txt"), "w") as f:
        f.write("# generated by tests/reference/schedules.py with torch %s; do not edit\n" % torch.__version__)
        f.write("# case NAME base_lr BASE total_steps T, then the schedule section's keys;\n")
        f.write("# then one line per update: lr STEP VALUE (STEP 1-based)\n")
        for name, base, total, given in CASES:
            spec = dict(DEFAULTS, **given)
            keys = " ".join("%s %s" % (k, v if isinstance(v, str) else repr(v)) for k, v in spec.items())
            f.write("case %s base_lr %r total_steps %d %s\n" % (name, base, total, keys))
            for k, lr in enumerate(lrs(base, total, spec)):
                f.write("lr %d %r\n" % (k + 1, lr))


if __name__ == "__main__":
    main()
