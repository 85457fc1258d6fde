"""Benchmark: achieved FLOP/s of one BYOL training step of the CPU recipes, in float32 and under
bfloat16 autocast side by side, against the machine's rate of torch.mm in each precision
measured here (a practical reference, not a hardware ceiling), and against a plain-PyTorch step
written here (run in the same precision).

For each CPU scale (digits-small, fashion-mnist-10k, fashion-mnist-20k: the settings
`byoltheory reproduce --scale S` trains with, BYOL with a linear predictor and EMA target):
  * FLOPs of one step (online forward + backward of both views, target forward of both views),
    counted by torch.utils.flop_counter.FlopCounterMode;
  * the step's time as `byoltheory.byol.train_epoch` runs it (BYOL.loss, SGD step,
    update_target) on pre-made views, and the augmentation's time per batch (TwoViewLoader);
  * the same step written plainly (baseline: benchmarks/_baseline.py, the step a reader writes by
    hand, run on deep copies of the same modules);
  * both precisions: float32, and `precision='bf16'` (torch.autocast on the CPU, as `train`
    runs it: weights, EMA target, BatchNorm statistics and the loss stay float32);
  * the reference: the best GFLOP/s of torch.mm on square matrices (512 to 2048) in float32 and
    in bfloat16 at the recipe's thread count, measured in this process.
Steps are timed interleaved, best of --reps. Run it on an idle machine. The first line names the
CPU (`byoltheory.byol.cpu_kind`): without native bfloat16 (no avx512_bf16 / amx_bf16 flag) the
bf16 step is emulated and slower than the fp32 one.
Usage: python benchmarks/train_step.py [--scale digits-small fashion-mnist-10k] [--reps 20]"""
import argparse, time
import torch
from torch.utils.flop_counter import FlopCounterMode
from _baseline import plain_step_for
import dataclasses
from byoltheory.byol import TrainConfig, autocast_for, build_model, cpu_kind, make_optimizer
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


def matmul_rate(dtype=torch.float32):
    "Best GFLOP/s of torch.mm in `dtype` at the current thread count."
    out = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        out = max(out, 2 * n**3 / best_time(lambda: torch.mm(a, b), 5) / 1e9)
    return out


def in_precision(step, cfg, precision):
    "The step run under `train`'s autocast context for `precision`."
    ctx = autocast_for(dataclasses.replace(cfg, precision=precision), 'cpu')

    def run(x1, x2):
        with ctx:
            step(x1, x2)
    return run


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
    base = {'ours': ours_step(model, cfg), 'plain': plain_step_for(model, cfg)}
    steps = {(k, p): in_precision(s, cfg, p) for p in ('fp32', 'bf16') for k, s in base.items()}
    with FlopCounterMode(display=False) as fc:
        base['plain'](x1, x2)
    flops = fc.get_total_flops()
    for s in steps.values():
        s(x1, x2)  # warm-up
    times = {k: float('inf') for k in steps}
    for _ in range(args.reps):  # interleaved, so drift hits all alike
        for k, s in steps.items():
            times[k] = min(times[k], best_time(lambda: s(x1, x2), 1))
    peak = {'fp32': matmul_rate(), 'bf16': matmul_rate(torch.bfloat16)}
    print(f"== {scale}: {cfg.dataset}, backbone {cfg.backbone} width {cfg.width}, "
          f"batch {cfg.batch_size}, {cfg.threads} thread(s), channels_last {cfg.channels_last}")
    print(f"   FLOPs per step {flops / 1e9:.3f} G;  torch.mm {peak['fp32']:.1f} GFLOP/s (fp32), "
          f"{peak['bf16']:.1f} GFLOP/s (bf16)")
    for (k, p), t in times.items():
        print(f"   {k:5s} {p} step {1e3 * t:7.1f} ms  {flops / t / 1e9:6.1f} GFLOP/s "
              f"({flops / t / 1e9 / peak[p]:4.2f} x torch.mm {p})")
    for p in ('fp32', 'bf16'):
        print(f"   {p}: ours / plain time {times[('ours', p)] / times[('plain', p)]:.3f}")
    print(f"   bf16 / fp32 step time (ours) {times[('ours', 'bf16')] / times[('ours', 'fp32')]:.3f}; "
          f"augmentation {1e3 * aug:.1f} ms per batch (two views)")


cpu = cpu_kind()
print(f"torch {torch.__version__}; {cpu['model']}, {cpu['capability']} kernels, native bfloat16: "
      f"{cpu['native_bf16']}; times are best of {args.reps}")
for scale in args.scale:
    bench(scale)
