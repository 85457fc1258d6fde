"""Benchmark: the overhead of byoltheory.diagnostics.Monitor (chapter 16) on a BYOL step, at every=50.

1. The monitor's own work per optimiser step, through its public API: a predictor called in
   training mode on both views of a batch, then the optimiser's step, for 2·every steps (so two
   measurements are included), with a Monitor attached and without one, interleaved; the
   difference divided by the steps. For a linear W_p (nn.Linear(d, d)) and for byol-pytorch's
   default MLP predictor (d → 4096 → d, BatchNorm, ReLU: its W_p is the mean Jacobian).
2. One symmetrised BYOL step (ResNet-18 with the CIFAR stem on 32x32 images, 2-layer projector
   to d, EMA target, SGD; the plain step of benchmarks/_baseline.py) with a linear predictor.
3. The ratio (1) / (2) for each predictor, in this process: the overhead the monitor adds to a
   training run (the target: at most 2 % at every=50 on the CPU).
Usage: python benchmarks/diagnostics.py [--batch 128] [--steps 2] [--dim 256] [--every 50]"""
import argparse, time
import torch, torch.nn as nn
from _baseline import plain_byol_step
from byoltheory.diagnostics import Monitor
from byoltheory.models import resnet18, projector

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--batch', type=int, default=128, help="BYOL step batch size (the paper's)")
ap.add_argument('--steps', type=int, default=2, help='timed BYOL steps')
ap.add_argument('--dim', type=int, default=256, help='projector output = predictor dimension d')
ap.add_argument('--every', type=int, default=50, help="the monitor's measurement interval")
ap.add_argument('--reps', type=int, default=3, help='interleaved repetitions of (1)')
args = ap.parse_args()
for name in ('batch', 'steps', 'dim', 'every', 'reps'):
    if getattr(args, name) < (2 if name == 'batch' else 1):
        ap.error(f'--{name} must be >= {2 if name == "batch" else 1}, got {getattr(args, name)}')
torch.set_num_threads(1)  # one thread: the monitor's work and the step alike
d, B = args.dim, args.batch


def predictor_steps(make, watched, n):
    "Seconds for n optimiser steps of the predictor alone (two training calls each)."
    torch.manual_seed(0)
    pred = make()
    opt = torch.optim.SGD(pred.parameters(), lr=0.01)
    if watched: Monitor(pred, every=args.every).attach(opt)
    f1, f2 = torch.randn(B, d), torch.randn(B, d)
    pred(f1), opt.step()  # warm-up (not a measurement: step 1)
    start = time.perf_counter()
    for _ in range(n):
        pred(f1), pred(f2)
        opt.step()
    return time.perf_counter() - start


def monitor_cost(make):
    "The monitor's seconds per optimiser step, measurements included (median over reps)."
    n = 2 * args.every
    diffs = sorted(predictor_steps(make, True, n) - predictor_steps(make, False, n)
                   for _ in range(args.reps))
    return diffs[len(diffs) // 2] / n


def byol_step_time():
    "Mean seconds of the baseline BYOL step (after one warm-up step)."
    torch.manual_seed(0)
    online = nn.Sequential(resnet18(stem='cifar'), projector(512, 512, d))
    pred = nn.Linear(d, d, bias=False)
    opt = torch.optim.SGD(list(online.parameters()) + list(pred.parameters()), lr=0.03,
                          momentum=0.9, weight_decay=4e-4)
    step = plain_byol_step(online, pred, opt, ema=0.996)
    x1, x2 = (torch.randn(B, 3, 32, 32) for _ in range(2))
    step(x1, x2)
    start = time.perf_counter()
    for _ in range(args.steps):
        step(x1, x2)
    return (time.perf_counter() - start) / args.steps


def byol_mlp():
    from byol_pytorch.byol_pytorch import MLP
    return MLP(d, d, 4096)  # byol-pytorch's default predictor


print(f"cpu, {torch.get_num_threads()} thread, torch {torch.__version__}; batch {B}, d = {d}, "
      f"every = {args.every}")
costs = {'linear W_p (nn.Linear)': monitor_cost(lambda: nn.Linear(d, d, bias=False)),
         "byol-pytorch's MLP (mean Jacobian)": monitor_cost(byol_mlp)}
for k, v in costs.items():
    print(f"1. the monitor's work, {k}: {1e3 * v:8.2f} ms per step, measurements included")
t_step = byol_step_time()
print(f"2. BYOL step, ResNet-18 (CIFAR stem), 32x32: {t_step:.3f} s/step "
      f"({args.steps} steps)")
for k, v in costs.items():
    print(f"3. overhead at every = {args.every}, {k}: {100 * v / t_step:.2f} % of a step "
          f"(target <= 2 %)")
