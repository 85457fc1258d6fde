"""The GPU scales' plumbing, exercised on the CPU before a GPU ever runs it (slow; `make book`).

Tiny STL-10 and CIFAR-10 files are written in their real on-disk formats (STL-10's binary
`*_X.bin` / `*_y.bin`, CIFAR-10's python pickle batches); then
  * `byoltheory reproduce table6 --scale full --device cpu` trains one cell for one step with the
    full-scale model (ResNet-18, ImageNet stem, 96×96) and its output, shaped like
    `results/full`, is rendered by the functions the chapters call;
  * the same at the `colab` scale (CIFAR-10, ResNet-18 with the CIFAR stem);
  * `byoltheory train` runs the full-scale model with bf16 autocast, channels_last and
    torch.compile, the GPU settings, on the CPU."""
import dataclasses, json, os, pickle, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from byoltheory.runs import grid_folder, metrics_path, run_files

SMOKE = ['--device', 'cpu', '--epochs', '1', '--probe-epochs', '1', '--threads', '1']


def _tiny_stl10(d: Path, rng, train=64, unlabeled=96, test=32):
    "STL-10's binary format: uint8 images 3×96×96 stored column-major, labels 1..10."
    d.mkdir(parents=True)
    for part, n in (('train', train), ('unlabeled', unlabeled), ('test', test)):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(d / f'{part}_X.bin')
        if part != 'unlabeled':
            rng.integers(1, 11, n, dtype=np.uint8).tofile(d / f'{part}_y.bin')


def _tiny_cifar10(d: Path, rng, per_batch=32):
    "CIFAR-10's python format: pickled dicts with b'data' (n, 3072) uint8 and b'labels'."
    d.mkdir(parents=True)
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        batch = {b'data': rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b'labels': rng.integers(0, 10, per_batch).tolist()}
        (d / name).write_bytes(pickle.dumps(batch))


def _cli(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'byoltheory.cli', *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    rng = np.random.default_rng(0)
    _tiny_stl10(root / 'stl10_binary', rng)
    _tiny_cifar10(root / 'cifar-10-batches-py', rng)
    return root


@pytest.mark.slow
@pytest.mark.parametrize('scale, dataset, backbone', [('full', 'stl10', 'resnet18-imagenet'),
                                                      ('colab', 'cifar10', 'resnet18')])
def test_reproduce_at_a_gpu_scale_renders(scale, dataset, backbone, data, tmp_path):
    from byoltheory.reproduce import get_grid, run_config
    from byoltheory.report import grid_table, claims_table, provenance
    grid = get_grid('table6')
    cell = grid.cells_at(scale)[0]
    out = tmp_path / 'results'
    _cli('reproduce', 'table6', '--scale', scale, '--cell', cell.name, '--seeds', '1',
         '--data-root', str(data), '--out', str(out), *SMOKE, cwd=tmp_path)
    runs = run_files(grid_folder(out, scale, 'table6'))
    assert len(runs) == 1
    run = json.loads(runs[0].read_text())
    assert run['config']['dataset'] == dataset and run['config']['backbone'] == backbone
    assert run['scale'] == scale and np.isfinite(run['knn_top1'])
    # label it as the GPU run it stands in for (its settings, not the smoke run's), then render
    # it on this CPU machine as the chapter does with a committed results/full
    run['config'] = dataclasses.asdict(run_config(grid, cell, scale, 0).resolved(here=False))
    runs[0].write_text(json.dumps(run))
    table = grid_table('table6', scale, out=out)  # what the chapter shows
    assert cell.name in table and 'not run' in table
    claims_table('table6', scale, out=out)
    assert provenance('table6', scale, out=out)['device'] == ['cpu']


@pytest.mark.slow
def test_train_with_the_gpu_settings_on_cpu(data, tmp_path):
    out = tmp_path / 'run'
    _cli('train', '--dataset', 'stl10', '--data-root', str(data), '--precision', 'bf16',
         '--channels-last', '--compile', '--compile-mode', 'reduce-overhead', '--out', str(out), *SMOKE,
         cwd=tmp_path)
    m = json.loads(metrics_path(out).read_text())
    assert m['config']['backbone'] == 'resnet18-imagenet' and m['config']['compile']
    assert m['config']['compile_mode'] == 'reduce-overhead'  # the CUDA-graph path runs on a CPU too
    assert all(np.isfinite(m[k]) for k in ('knn_top1', 'top1', 'feature_std'))
