#!/usr/bin/python3
"""
optimizers.py -- reference trajectories of torch.optim for the optimizer
plugins (sgd, adam, adamw, adagrad), written as text fixtures that
tests/optimizers/test_optimizers.c compares against. The test suite itself
never needs PyTorch.

Regenerate (Debian's python3-torch 1.13 is what produced the committed files):

    /usr/bin/python3 tests/reference/optimizers.py [tests/reference/fixtures]

What it writes:
  optim_inputs.txt     the case list, N, the starting weights w0 (N floats)
                       and the 10 gradients (generated here from a fixed seed
                       with Python's own generator, so they do not depend on
                       the torch version)
  optim_<case>.txt     one per case: the optimizer, the parameters that differ
                       from the plugin's defaults, and the weights after every
                       one of the 10 torch.optim steps

Every float32 is printed with %.9g, which round-trips float32 exactly;
parameters are printed with repr(), which round-trips float64. Each step
runs in float32 on the CPU, single-tensor path (foreach=False).
"""
import os
import random
import struct
import sys

import torch

N = 257     # odd, not a multiple of any vector width
STEPS = 10
SEED = 20240531

# Per-step gradient scale: large, small and tiny steps, so the second
# moment both grows and shrinks (AMSGrad's maximum then matters) and eps
# is not negligible everywhere.
STEP_SCALE = [1.0, 3.0, 0.2, 1.0, 0.05, 2.0, 0.5, 1.0, 1e-3, 1.0]

# (case name, optimizer, parameters that differ from the plugin defaults).
# torch.optim.SGD has no default lr; the plugin's is 1e-3.
CASES = [
    ("sgd_default", "sgd", {"lr": 1e-3}),
    ("sgd_lr", "sgd", {"lr": 0.02}),
    ("sgd_momentum", "sgd", {"lr": 0.01, "momentum": 0.9}),
    ("sgd_dampening", "sgd", {"lr": 0.01, "momentum": 0.9, "dampening": 0.3}),
    ("sgd_nesterov", "sgd", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("sgd_weight_decay", "sgd", {"lr": 0.02, "weight_decay": 0.1}),
    ("sgd_momentum_wd", "sgd", {"lr": 0.01, "momentum": 0.5, "dampening": 0.5, "weight_decay": 0.01}),
    ("sgd_nesterov_wd", "sgd", {"lr": 0.02, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    ("adam_default", "adam", {}),
    ("adam_lr", "adam", {"lr": 0.01}),
    ("adam_betas", "adam", {"lr": 0.01, "betas": [0.8, 0.95]}),
    ("adam_eps", "adam", {"lr": 0.01, "eps": 1e-3}),
    ("adam_weight_decay", "adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("adam_amsgrad", "adam", {"lr": 0.01, "amsgrad": True}),
    ("adam_amsgrad_all", "adam", {"lr": 0.02, "betas": [0.5, 0.9], "eps": 1e-6, "weight_decay": 0.05,
                                  "amsgrad": True}),
    ("adamw_default", "adamw", {}),
    ("adamw_lr_wd", "adamw", {"lr": 0.01, "weight_decay": 0.1}),
    ("adamw_betas_eps", "adamw", {"lr": 0.01, "betas": [0.5, 0.9], "eps": 1e-6}),
    ("adamw_no_decay", "adamw", {"lr": 0.01, "weight_decay": 0.0}),
    ("adamw_amsgrad", "adamw", {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True}),
    ("adagrad_default", "adagrad", {}),
    ("adagrad_lr_decay", "adagrad", {"lr": 0.05, "lr_decay": 0.05}),
    ("adagrad_weight_decay", "adagrad", {"lr": 0.05, "weight_decay": 0.1}),
    ("adagrad_initial_acc", "adagrad", {"lr": 0.05, "initial_accumulator_value": 0.5}),
    ("adagrad_eps", "adagrad", {"lr": 0.05, "eps": 1e-3}),
]

TORCH_CLASS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
               "adagrad": torch.optim.Adagrad}


def f32(x):
    """Round a Python float to the nearest float32."""
    return struct.unpack("f", struct.pack("f", x))[0]


def inputs():
    """Starting weights and gradients: normal values with a few exact zeros
    and a spread of magnitudes."""
    rng = random.Random(SEED)
    w0 = [f32(rng.gauss(0.0, 1.0)) for _ in range(N)]
    w0[0] = 0.0
    w0[1] = f32(1e-6)
    grads = []
    for t in range(STEPS):
        g = []
        for i in range(N):
            mag = (1.0, 0.1, 0.01)[i % 3]
            g.append(f32(rng.gauss(0.0, 1.0) * mag * STEP_SCALE[t]))
        g[2] = 0.0 if t % 2 == 0 else g[2]  # an element whose gradient is sometimes 0
        g[5] = 0.0                           # and one that never gets a gradient
        grads.append(g)
    return w0, grads


def fmt(values):
    return " ".join("%.9g" % v for v in values)


def trajectory(opt_name, params, w0, grads):
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
    kwargs = dict(params)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    opt = TORCH_CLASS[opt_name]([p], foreach=False, **kwargs)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        out.append(p.detach().clone().tolist())
    return out


def param_text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return " ".join(repr(float(v)) for v in value)
    return repr(float(value))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                "fixtures")
    os.makedirs(outdir, exist_ok=True)
    header = "# generated by tests/reference/optimizers.py with torch %s; do not edit\n" % torch.__version__
    w0, grads = inputs()
    with open(os.path.join(outdir, "optim_inputs.txt"), "w") as f:
        f.write(header)
        f.write("cases %s\n" % " ".join(c[0] for c in CASES))
        f.write("n %d\nsteps %d\n" % (N, STEPS))
        f.write("w0 %s\n" % fmt(w0))
        for t, g in enumerate(grads):
            f.write("grad %d %s\n" % (t + 1, fmt(g)))
    for name, opt_name, params in CASES:
        traj = trajectory(opt_name, params, w0, grads)
        with open(os.path.join(outdir, "optim_%s.txt" % name), "w") as f:
            f.write(header)
            f.write("optimizer %s\n" % opt_name)
            for k, v in params.items():
                f.write("param %s %s\n" % (k, param_text(v)))
            for t, w in enumerate(traj):
                f.write("step %d %s\n" % (t + 1, fmt(w)))


if __name__ == "__main__":
    main()
