"""The training stack end to end, through the console entry point (byoltheory.cli): a run killed by a signal mid-way
and resumed ends with exactly the metrics of an uninterrupted run, a missing dataset names the flag, and (slow)
torchrun with two gloo processes trains with DDP."""
import json, os, signal, socket, subprocess, sys, time
import pytest
import torch
from byoltheory.runs import checkpoint_path, log_path, metrics_path

ENV = dict(os.environ, OMP_NUM_THREADS='1')
TINY = ['--subset', '256', '--batch-size', '32', '--probe-epochs', '3', '--quiet', '--threads', '1']

EPOCHS, KILL_FROM = 6, 3  # a 6-epoch run, killed at its 3rd epoch or later

def _train(out, *extra, epochs=EPOCHS):
    return [sys.executable, '-m', 'byoltheory.cli', 'train', '--epochs', str(epochs), *TINY, '--out', str(out), *extra]

KEYS = ('top1', 'top5', 'best_top1_official', 'knn_top1', 'feature_std', 'effective_rank')

def test_kill_and_resume_matches_uninterrupted(tmp_path):
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    subprocess.run(_train(full), check=True, capture_output=True, timeout=600, env=ENV)
    proc = subprocess.Popen(_train(cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    ckpt, deadline, killed_at = checkpoint_path(cut), time.time() + 300, None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try: epoch = torch.load(ckpt, weights_only=False)['epoch']
            except Exception: epoch = 0                       # caught mid-rename: try again
            if epoch >= KILL_FROM:
                proc.send_signal(signal.SIGKILL); proc.wait(); killed_at = epoch; break
        time.sleep(0.02)
    assert killed_at is not None and killed_at < EPOCHS, 'the run was not killed mid-way'
    assert not metrics_path(cut).exists()
    subprocess.run(_train(cut, '--resume'), check=True, capture_output=True, timeout=600, env=ENV)
    a, b = json.loads(metrics_path(full).read_text()), json.loads(metrics_path(cut).read_text())
    assert {k: a[k] for k in KEYS} == {k: b[k] for k in KEYS}
    assert [json.loads(l)['epoch'] for l in log_path(cut).read_text().splitlines()] == list(range(1, EPOCHS + 1))

def test_missing_dataset_names_the_flag(tmp_path):
    r = subprocess.run(_train(tmp_path / 'x', '--dataset', 'cifar10', '--data-root', str(tmp_path / 'none'), epochs=1),
                       capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode != 0 and '--download' in r.stderr and 'none' in r.stderr and 'Traceback' not in r.stderr

@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / 'ddp'
    with socket.socket() as sock: sock.bind(('127.0.0.1', 0)); port = sock.getsockname()[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(port),
           '-m', 'byoltheory.cli', 'train', '--epochs', '2', *TINY, '--predictor', 'directpred', '--out', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(metrics_path(out).read_text())
    assert m['world_size'] == 2 and m['epochs'] == 2 and all(k in m for k in KEYS)
