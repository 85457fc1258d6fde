"""Benchmark: achieved FLOP/s of one BYOL training step of the CPU recipes, against the machine's
float32 rate of torch.mm measured here (a practical reference, not a hardware ceiling), and
against a plain-PyTorch step written here.

For each scale (digits, fashion-mnist: the settings `byoltheory reproduce --scale S` trains with,
BYOL with a linear predictor and EMA target):
  * FLOPs of one step (online forward + backward of both views, target forward of both views),
    counted by torch.utils.flop_counter.FlopCounterMode;
  * the step's time as `byoltheory.byol.train_epoch` runs it (BYOL.loss, SGD step,
    update_target) on pre-made views, and the augmentation's time per batch (TwoViewLoader);
  * the same step written plainly (baseline: benchmarks/_baseline.py, the step a reader writes by
    hand, run on deep copies of the same modules);
  * the reference: the best float32 GFLOP/s of torch.mm on square matrices (512 to 2048) at the
    recipe's thread count, measured in this process.
Steps are timed interleaved, best of --reps. Run it on an idle machine.
Usage: python benchmarks/train_step.py [--scale digits fashion-mnist] [--reps 20]"""
import argparse, time
import torch
from torch.utils.flop_counter import FlopCounterMode
from _baseline import plain_step_for
from byoltheory.byol import TrainConfig, build_model, make_optimizer
from byoltheory.data import load_dataset, TwoViewLoader
from byoltheory.reproduce import SCALES

CPU_SCALES = [s for s in SCALES if SCALES[s].config.get('device', 'cpu') == 'cpu']
ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--scale', nargs='+', default=CPU_SCALES, choices=CPU_SCALES)
ap.add_argument('--reps', type=int, default=20, help='timed steps per implementation (>= 3)')
args = ap.parse_args()
if args.reps < 3: ap.error(f'--reps must be >= 3, got {args.reps}')


def best_time(fn, reps):
    "Best wall time of fn() over reps calls."
    best = float('inf')
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rate():
    "Best float32 GFLOP/s of torch.mm at the current thread count."
    out = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = max(out, 2 * n**3 / best_time(lambda: torch.mm(a, b), 5) / 1e9)
    return out


def ours_step(model, cfg):
    "One step as byoltheory.byol.train_epoch runs it."
    opt = make_optimizer(model, cfg)

    def step(x1, x2):
        loss = model.loss(x1, x2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_target()
    return step


def bench(scale):
    cfg = TrainConfig(**SCALES[scale].config).resolved()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    pre = load_dataset(cfg.dataset, 'pretrain', subset=cfg.subset)
    loader = TwoViewLoader(pre, cfg.batch_size, aug=cfg.aug, seed=0, aug_opts=cfg.aug_opts)
    batches = iter(loader)
    x1, x2, _ = next(batches)
    aug = best_time(lambda: next(batches), min(args.reps, len(loader) - 2))
    model = build_model(cfg)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x1, x2 = (x.contiguous(memory_format=fmt) for x in (x1, x2))
    steps = {'ours': ours_step(model, cfg), 'plain': plain_step_for(model, cfg)}
    with FlopCounterMode(display=False) as fc:
        steps['plain'](x1, x2)
    flops = fc.get_total_flops()
    for s in steps.values():
        s(x1, x2)  # warm-up
    times = {k: float('inf') for k in steps}
    for _ in range(args.reps):
        for k, s in steps.items():
            times[k] = min(times[k], best_time(lambda: s(x1, x2), 1))
    peak = matmul_rate()
    print(f"== {scale}: {cfg.dataset}, backbone {cfg.backbone} width {cfg.width}, "
          f"batch {cfg.batch_size}, {cfg.threads} thread(s), channels_last {cfg.channels_last}")
    print(f"   FLOPs per step {flops / 1e9:.3f} G;  torch.mm {peak:.1f} GFLOP/s")
    for k, t in times.items():
        print(f"   {k:5s} step {1e3 * t:7.1f} ms  {flops / t / 1e9:6.1f} GFLOP/s "
              f"({flops / t / 1e9 / peak:4.2f} x torch.mm)")
    print(f"   augmentation {1e3 * aug:.1f} ms per batch (two views);  "
          f"ours / plain time {times['ours'] / times['plain']:.3f}")


print(f"torch {torch.__version__}; times are best of {args.reps}")
for scale in args.scale:
    bench(scale)
