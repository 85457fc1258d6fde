"""Benchmark: the cost of byoltheory.directpred.DirectPredictor (Eqs 18-19).
1. forward + update of DirectPredictor (freq=1) vs the forward of a learned nn.Linear predictor, batch 256,
   d = 64, 128, 256, 512;
2. one symmetrised BYOL training step (ResNet-18 with the CIFAR stem on 32x32 images, 2-layer projector to d,
   EMA target, SGD) with DirectPredictor vs with nn.Linear(d, d), measured in the same process, interleaved,
   and printed as a ratio (target on GPU: <= 1.10x at d = 256, freq = 1).
Usage: python benchmarks/directpred.py [--device cpu|cuda] [--batch 128] [--steps 3] [--dim 256]"""
import argparse, copy, time
import torch, torch.nn as nn, torch.nn.functional as F
from byoltheory.directpred import DirectPredictor
from byoltheory.models import resnet18

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
ap.add_argument('--batch', type=int, default=128, help='BYOL step batch size (default 128, the paper\'s)')
ap.add_argument('--steps', type=int, default=3, help='timed BYOL steps per predictor (default 3)')
ap.add_argument('--dim', type=int, default=256, help='projector output / predictor dimension d (default 256)')
args = ap.parse_args()
if args.device == 'cuda' and not torch.cuda.is_available(): ap.error('--device cuda: no CUDA device is available')
if args.batch < 2 or args.steps < 1 or args.dim < 1: ap.error('--batch >= 2, --steps >= 1 and --dim >= 1 are required')
dev = torch.device(args.device)
sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
torch.manual_seed(0)

def timeit(fn, reps):
    fn(); sync()
    start = time.perf_counter()
    for _ in range(reps): fn()
    sync()
    return (time.perf_counter() - start) / reps

print(f"device: {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'} ({torch.get_num_threads()} threads), torch {torch.__version__}")
print("1. predictor alone, batch 256")
for d in (64, 128, 256, 512):
    f = torch.randn(256, d, device=dev)
    dp, lin = DirectPredictor(d).to(dev), nn.Linear(d, d, bias=False).to(dev)
    t_dp, t_lin = timeit(lambda: dp(f), 10), timeit(lambda: lin(f), 10)
    print(f"   d = {d:3d}: DirectPredictor forward + update {1e3 * t_dp:8.3f} ms, nn.Linear forward {1e3 * t_lin:7.3f} ms")

def make_step(predictor):
    torch.manual_seed(0)
    online = nn.Sequential(resnet18(stem='cifar'), nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, args.dim)).to(dev)
    target = copy.deepcopy(online).requires_grad_(False)
    predictor = predictor.to(dev)
    params = list(online.parameters()) + list(predictor.parameters())
    opt = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=4e-4)
    x1, x2 = torch.randn(args.batch, 3, 32, 32, device=dev), torch.randn(args.batch, 3, 32, 32, device=dev)
    loss_fn = lambda p, z: 2 - 2 * F.cosine_similarity(p, z, dim=-1).mean()
    def step():
        with torch.no_grad(): z1, z2 = target(x1), target(x2)
        loss = loss_fn(predictor(online(x1)), z2) + loss_fn(predictor(online(x2)), z1)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        with torch.no_grad():
            for pt, po in zip(target.parameters(), online.parameters()): pt.lerp_(po, 0.004)
    return step

step_dp, step_lin = make_step(DirectPredictor(args.dim)), make_step(nn.Linear(args.dim, args.dim, bias=False))
step_dp(); step_lin(); sync()                                      # warm-up
t_dp = t_lin = 0.0
for _ in range(args.steps):                                          # interleaved, so drift hits both alike
    t_dp += timeit(step_dp, 1); t_lin += timeit(step_lin, 1)
t_dp, t_lin = t_dp / args.steps, t_lin / args.steps
print(f"2. BYOL step, ResNet-18 (CIFAR stem), batch {args.batch}, 32x32, d = {args.dim}, {args.steps} steps each")
print(f"   learned nn.Linear predictor: {t_lin:7.3f} s/step ({args.batch / t_lin:7.1f} img/s)")
print(f"   DirectPredictor (freq=1):    {t_dp:7.3f} s/step ({args.batch / t_dp:7.1f} img/s)")
print(f"   overhead ratio DirectPredictor / nn.Linear: {t_dp / t_lin:.3f}x   (target on GPU: <= 1.10x at d = 256)")
