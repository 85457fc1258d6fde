"""Benchmark: the cost of byoltheory.directpred.DirectPredictor (Eqs 18-19).

1. The predictor alone, batch 256: one training step of DirectPredictor (two views, then the
   Eq 19 update and, freq = 1, the Eq 18 eigendecomposition) against two calls of a learned
   nn.Linear(d, d), for d = 64, 128, 256, 512.
2. One symmetrised BYOL step (ResNet-18 with the CIFAR stem on 32x32 images, 2-layer projector
   to d, EMA target, SGD; the plain step of benchmarks/_baseline.py) with DirectPredictor against
   nn.Linear(d, d), timed interleaved in this process and printed as a ratio (the paper's claim: DirectPred costs
   about what a learned predictor costs).
Usage: python benchmarks/directpred.py [--device cpu|cuda] [--batch 128] [--steps 3] [--dim 256]"""
import argparse, time
import torch, torch.nn as nn
from _baseline import plain_byol_step
from byoltheory.directpred import DirectPredictor
from byoltheory.models import resnet18, projector

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
ap.add_argument('--batch', type=int, default=128, help="BYOL step batch size (the paper's)")
ap.add_argument('--steps', type=int, default=3, help='timed BYOL steps per predictor')
ap.add_argument('--dim', type=int, default=256, help='projector output = predictor dimension d')
args = ap.parse_args()
if args.device == 'cuda' and not torch.cuda.is_available():
    ap.error('--device cuda: no CUDA device is available')
for name in ('batch', 'steps', 'dim'):
    if getattr(args, name) < (2 if name == 'batch' else 1):
        ap.error(f'--{name} must be >= {2 if name == "batch" else 1}, got {getattr(args, name)}')
dev = torch.device(args.device)
sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)


def timeit(fn, reps, warm=True):
    "Mean seconds per call of fn over reps calls (after one warm-up call if `warm`)."
    if warm: fn()
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - start) / reps


def make_step(predictor):
    "The baseline BYOL step (benchmarks/_baseline.py) with `predictor`, on fixed random views."
    torch.manual_seed(0)
    online = nn.Sequential(resnet18(stem='cifar'), projector(512, 512, args.dim)).to(dev)
    predictor = predictor.to(dev)
    params = list(online.parameters()) + list(predictor.parameters())
    opt = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=4e-4)
    if hasattr(predictor, 'attach'): predictor.attach(opt)  # F̂ and W_p move at opt.step()
    step = plain_byol_step(online, predictor, opt, ema=0.996)
    x1, x2 = (torch.randn(args.batch, 3, 32, 32, device=dev) for _ in range(2))
    return lambda: step(x1, x2)


name = torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'
print(f"device: {name} ({torch.get_num_threads()} threads), torch {torch.__version__}")
print("1. the predictor alone, batch 256, one step = two views")
for d in (64, 128, 256, 512):
    f = torch.randn(256, d, device=dev)
    dp, lin = DirectPredictor(d).to(dev).attach(), nn.Linear(d, d, bias=False).to(dev)
    t_dp = timeit(lambda: (dp(f), dp(f), dp.step()), 10)
    t_lin = timeit(lambda: (lin(f), lin(f)), 10)
    print(f"   d = {d:3d}: DirectPredictor {1e3 * t_dp:8.3f} ms, "
          f"nn.Linear {1e3 * t_lin:7.3f} ms per step")

step_dp = make_step(DirectPredictor(args.dim))
step_lin = make_step(nn.Linear(args.dim, args.dim, bias=False))
step_dp(), step_lin()  # warm-up
t_dp = t_lin = 0.0
for _ in range(args.steps):  # interleaved, so drift hits both alike
    t_dp += timeit(step_dp, 1, warm=False)
    t_lin += timeit(step_lin, 1, warm=False)
t_dp, t_lin = t_dp / args.steps, t_lin / args.steps
print(f"2. BYOL step, ResNet-18 (CIFAR stem), batch {args.batch}, 32x32, d = {args.dim}, "
      f"{args.steps} steps each")
print(f"   learned nn.Linear predictor: {t_lin:7.3f} s/step ({args.batch / t_lin:7.1f} img/s)")
print(f"   DirectPredictor (freq = 1):  {t_dp:7.3f} s/step ({args.batch / t_dp:7.1f} img/s)")
print(f"   ratio DirectPredictor / nn.Linear: {t_dp / t_lin:.3f}x")
