"""Benchmark: what a run of each GPU scale costs, measured on the GPU it runs on.

For each GPU scale (`full`: STL-10, ResNet-18 with the ImageNet stem, 96x96, fp32, the paper's
setting; `colab`: CIFAR-10, ResNet-18 with the CIFAR stem, mixed precision):
  * data files are written in the dataset's real on-disk format at its real size (STL-10:
    5,000 train + 100,000 unlabeled + 8,000 test; CIFAR-10: 50,000 + 10,000) with random pixels:
    a step's arithmetic does not depend on pixel values, and the GPU machine cannot download;
  * the first cell of Table 6, seed 0, is trained for --epochs epochs with exactly the settings
    `byoltheory reproduce table6 --scale S` uses, through `byoltheory.byol.train` (loader,
    augmentation on the GPU, autocast, EMA, checkpoints, evaluation), and each epoch's seconds
    are read from its log.jsonl; the evaluation's seconds are the rest of the wall time;
  * one step as `train_epoch` runs it against the plain step of benchmarks/_baseline.py (same
    modules deep-copied, same batch, same autocast), timed interleaved with CUDA synchronisation,
    best of --reps: the ratio says what the library's bookkeeping costs on a GPU.
Projected hours of one run = first epoch + (epochs - 1) x median later epoch + evaluation.
The accuracies are meaningless (random pixels) and are not reported.
With --compile, also our step under torch.compile (what `train --compile` runs), after its warm-up.
Usage: python benchmarks/gpu_scales.py [--scale full colab] [--epochs 3] [--reps 20] [--compile]
       [--out F]"""
import argparse, dataclasses, json, os, pickle, platform, statistics, subprocess, time
from pathlib import Path
import numpy as np
import torch
from _baseline import plain_step_for
from byoltheory.byol import build_model, make_optimizer, autocast_for, train
from byoltheory.data import load_dataset, TwoViewLoader
from byoltheory.runs import log_path
from byoltheory.reproduce import SCALES, get_grid, run_config

GPU_SCALES = [s for s in SCALES if SCALES[s].config.get('device') == 'cuda']
ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--scale', nargs='+', default=GPU_SCALES, choices=GPU_SCALES)
ap.add_argument('--epochs', type=int, default=3, help='epochs trained per scale (>= 2)')
ap.add_argument('--reps', type=int, default=20, help='timed steps per implementation (>= 3)')
ap.add_argument('--data', default='/tmp/gpu-scales-data', help='where the data files go')
ap.add_argument('--out', default=None, help='write the results as JSON here')
ap.add_argument('--compile', action='store_true',
                help='also time our step with torch.compile on the online network')
ap.add_argument('--device', default='cuda', help="'cpu' with a small --fraction checks the script")
ap.add_argument('--fraction', type=float, default=1.0, help='of the real dataset sizes, (0, 1]')
args = ap.parse_args()
if not 0 < args.fraction <= 1: ap.error(f'--fraction must be in (0, 1], got {args.fraction}')
if args.epochs < 2: ap.error(f'--epochs must be >= 2, got {args.epochs}')
if args.reps < 3: ap.error(f'--reps must be >= 3, got {args.reps}')
if args.device == 'cuda' and not torch.cuda.is_available():
    print('skipped: no CUDA device (this benchmark measures the GPU scales; '
          '--device cpu --fraction 0.003 only checks the script)')
    raise SystemExit(0)
size = lambda n: max(256, int(n * args.fraction))


def write_stl10(d: Path, rng):
    "STL-10's binary format: uint8 3x96x96 images (column-major), labels 1..10."
    d.mkdir(parents=True, exist_ok=True)
    for part, n in (('train', 5_000), ('unlabeled', 100_000), ('test', 8_000)):
        n = size(n)
        (d / f'{part}_X.bin').write_bytes(rng.bytes(n * 3 * 96 * 96))
        if part != 'unlabeled':
            rng.integers(1, 11, n, dtype=np.uint8).tofile(d / f'{part}_y.bin')


def write_cifar10(d: Path, rng):
    "CIFAR-10's python format: five pickled training batches of 10,000 and one test batch."
    d.mkdir(parents=True, exist_ok=True)
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        n = size(10_000)
        batch = {b'data': np.frombuffer(rng.bytes(n * 3072), np.uint8).reshape(-1, 3072),
                 b'labels': rng.integers(0, 10, n).tolist()}
        (d / name).write_bytes(pickle.dumps(batch))


def sync():
    if args.device == 'cuda': torch.cuda.synchronize()


def cuda_time(fn):
    "Wall seconds of fn() with the GPU's queue drained before and after."
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def first_batch(cfg):
    "(x1, x2, steps per epoch): the two views of the scale's first batch, on the device."
    loader = TwoViewLoader(load_dataset(cfg.dataset, 'pretrain', root=cfg.data_root),
                           cfg.batch_size, aug=cfg.aug, device=cfg.device, seed=0,
                           aug_opts=cfg.aug_opts)
    x1, x2, _ = next(iter(loader))
    return x1, x2, len(loader)


def step_pair(cfg, x1, x2):
    "(ours, plain): one training step each on (x1, x2), on deep copies of the same model."
    model = build_model(cfg).to(cfg.device)
    if cfg.channels_last: model = model.to(memory_format=torch.channels_last)
    if cfg.compile: model.online = torch.compile(model.online)  # as train does
    autocast, opt = autocast_for(cfg, cfg.device), make_optimizer(model, cfg)

    def ours():
        with autocast:
            loss = model.loss(x1, x2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_target()
    plain_step = plain_step_for(model, cfg)

    def plain():
        with autocast:
            plain_step(x1, x2)
    return ours, plain


def steps(cfg) -> dict:
    "Best step time of ours and of the plain step, interleaved."
    x1, x2, n = first_batch(cfg)  # the data is read once, for every variant
    fns = dict(zip(('ours', 'plain'), step_pair(cfg, x1, x2)))
    if args.compile:
        fns['ours_compiled'] = step_pair(dataclasses.replace(cfg, compile=True), x1, x2)[0]
    for f in fns.values():
        for _ in range(3): f()  # warm-up (cuDNN autotuning)
    best = {k: float('inf') for k in fns}
    for _ in range(args.reps):
        for k, f in fns.items():
            best[k] = min(best[k], cuda_time(f))
    return dict(step_ms={k: 1e3 * v for k, v in best.items()},
                ours_over_plain=best['ours'] / best['plain'], steps_per_epoch=n,
                **({'compiled_over_ours': best['ours_compiled'] / best['ours']}
                   if args.compile else {}))


def epochs(scale, cfg) -> dict:
    "Train `epochs` epochs through byoltheory.byol.train; per-epoch and evaluation seconds."
    out = Path(args.data) / 'runs' / scale
    start = time.perf_counter()
    m = train(dataclasses.replace(cfg, epochs=args.epochs), out, overwrite=True, progress=False)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in log_path(out).read_text().splitlines()]
    secs = [r['seconds'] for r in rows]
    later = statistics.median(secs[1:])
    evaluation = wall - m['train_seconds']
    hours = (secs[0] + (SCALES[scale].config['epochs'] - 1) * later + evaluation) / 3600
    return dict(epoch_seconds=secs, later_epoch_median_s=later, evaluation_s=evaluation,
                projected_hours_per_run=hours)


rng = np.random.default_rng(0)
data = Path(args.data)
write_stl10(data / 'stl10_binary', rng)
write_cifar10(data / 'cifar-10-batches-py', rng)
commit = os.environ.get('GIT_COMMIT') or subprocess.run(  # GIT_COMMIT: where .git is absent
    ['git', 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout
name = torch.cuda.get_device_name() if args.device == 'cuda' else platform.processor()
report = dict(device=name, torch=torch.__version__, torch_threads=torch.get_num_threads(),
              cuda=torch.version.cuda, python=platform.python_version(), commit=commit.strip(),
              epochs_trained=args.epochs, reps=args.reps, fraction=args.fraction, scales={})
print(f"{report['device']}, torch {report['torch']}, CUDA {report['cuda']}")
grid = get_grid('table6')
for scale in args.scale:
    cell = grid.cells_at(scale)[0]
    cfg = dataclasses.replace(run_config(grid, cell, scale, 0), data_root=str(data),
                              device=args.device).resolved()
    r = dict(cell=cell.name, batch_size=cfg.batch_size, precision=cfg.precision,
             epochs_at_scale=SCALES[scale].config['epochs'], seeds_at_scale=SCALES[scale].seeds,
             cells_in_table6=len(grid.cells_at(scale)), **steps(cfg), **epochs(scale, cfg))
    r['projected_hours_table6'] = (r['projected_hours_per_run'] * r['cells_in_table6']
                                   * r['seeds_at_scale'])
    report['scales'][scale] = r
    print(f"== {scale}: {cfg.dataset}, {cfg.backbone}, batch {cfg.batch_size}, {cfg.precision}")
    print(f"   step: ours {r['step_ms']['ours']:.1f} ms, plain {r['step_ms']['plain']:.1f} ms "
          f"(ours / plain {r['ours_over_plain']:.3f})"
          + (f"; compiled {r['step_ms']['ours_compiled']:.1f} ms" if args.compile else ''))
    print(f"   epochs (s): {', '.join(f'{s:.1f}' for s in r['epoch_seconds'])} "
          f"({r['steps_per_epoch']} steps each); evaluation {r['evaluation_s']:.1f} s")
    print(f"   projected: {r['projected_hours_per_run']:.2f} h per run, "
          f"{r['projected_hours_table6']:.1f} h for Table 6 ({r['cells_in_table6']} cells x "
          f"{r['seeds_at_scale']} seeds)")
    if args.out: Path(args.out).write_text(json.dumps(report, indent=1))
