"""Benchmark: images per second of one BYOL training step (ResNet-18 with the CIFAR stem, batch 128, 32x32, two views,
EMA target, SGD momentum) -- byoltheory.ssl's BYOL (build_model + BYOL.loss + update_target, as `train` runs it)
against a straightforward plain-PyTorch loop written here, in the same process, interleaved; prints the ratio.
Augmentation is excluded (both get the same pre-made views).
Usage: python benchmarks/train_step.py [--device cpu|cuda] [--batch 128] [--steps 3] [--width 64]"""
import argparse, copy, time
import torch, torch.nn as nn, torch.nn.functional as F
from byoltheory.ssl import TrainConfig, build_model
from byoltheory.models import resnet18

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
ap.add_argument('--batch', type=int, default=128)
ap.add_argument('--steps', type=int, default=3, help='timed steps per implementation (default 3)')
ap.add_argument('--width', type=int, default=64, help='ResNet-18 width (64 = the standard network)')
ap.add_argument('--bf16', action='store_true', help='bfloat16 autocast for both (cuda)')
args = ap.parse_args()
if args.device == 'cuda' and not torch.cuda.is_available(): ap.error('--device cuda: no CUDA device is available')
if args.batch < 2 or args.steps < 1 or args.width < 1: ap.error('--batch >= 2, --steps >= 1, --width >= 1 are required')
dev = torch.device(args.device)
sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
x1, x2 = torch.randn(args.batch, 3, 32, 32, device=dev), torch.randn(args.batch, 3, 32, 32, device=dev)
autocast = lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.bf16)

# ours: exactly what byoltheory.ssl.train does per step
torch.manual_seed(0)
cfg = TrainConfig(dataset='cifar10', width=args.width, device=args.device).resolved()
model = build_model(cfg, 3).to(dev)
opt = torch.optim.SGD([dict(params=model.online.parameters(), weight_decay=cfg.wd),
                       dict(params=model.predictor.parameters(), weight_decay=cfg.pred_wd)], lr=cfg.lr, momentum=cfg.momentum)
def ours():
    with autocast(): loss, _ = model.loss(x1, x2)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); model.update_target()

# plain PyTorch, written the obvious way
torch.manual_seed(0)
net = resnet18(width=args.width)
online = nn.Sequential(net, nn.Linear(net.out_dim, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128)).to(dev)
pred = nn.Linear(128, 128, bias=False).to(dev)
target = copy.deepcopy(online).requires_grad_(False)
opt2 = torch.optim.SGD(list(online.parameters()) + list(pred.parameters()), lr=0.03, momentum=0.9, weight_decay=4e-4)
def plain():
    with autocast():
        p1, p2 = pred(online(x1)), pred(online(x2))
        with torch.no_grad(): z1, z2 = target(x1), target(x2)
        loss = 4 - 2 * F.cosine_similarity(p1, z2, dim=-1).mean() - 2 * F.cosine_similarity(p2, z1, dim=-1).mean()
    opt2.zero_grad(set_to_none=True); loss.backward(); opt2.step()
    with torch.no_grad():
        for pt, po in zip(target.parameters(), online.parameters()): pt.mul_(0.996).add_(po, alpha=0.004)

for f in (ours, plain): f(); sync()          # warm-up
t = {'ours': 0.0, 'plain': 0.0}
for _ in range(args.steps):
    for name, f in (('ours', ours), ('plain', plain)):
        sync(); s = time.perf_counter(); f(); sync(); t[name] += time.perf_counter() - s
ips = {k: args.batch * args.steps / v for k, v in t.items()}
print(f"device: {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'} ({torch.get_num_threads()} threads), torch {torch.__version__}")
print(f"BYOL step, ResNet-18 width {args.width} (CIFAR stem), batch {args.batch}, 32x32, {args.steps} steps each{', bf16' if args.bf16 else ''}")
print(f"   byoltheory.ssl (BYOL.loss + update_target): {ips['ours']:8.1f} img/s")
print(f"   plain PyTorch loop:                          {ips['plain']:8.1f} img/s")
print(f"   ratio ours / plain: {ips['ours'] / ips['plain']:.3f}x (1.0 = no overhead)")
