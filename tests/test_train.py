"""The training stack end to end, through the console entry point (byoltheory.cli): a run killed mid-way and resumed
ends with the metrics of an uninterrupted run, and (slow) torchrun with two gloo processes trains with DDP."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch

def _train(out, *extra, epochs=20):
    return [sys.executable, '-m', 'byoltheory.cli', 'train', '--epochs', str(epochs), '--probe-epochs', '5',
            '--quiet', '--out', str(out), *extra]

KEYS = ('top1', 'top5', 'knn_top1', 'feature_std', 'effective_rank')

def test_kill_and_resume_matches_uninterrupted(tmp_path):
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    subprocess.run(_train(full), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(_train(cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, deadline, killed_at = cut / 'checkpoint.pt', time.time() + 300, None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try: epoch = torch.load(ckpt, weights_only=False)['epoch']
            except Exception: epoch = 0                       # caught mid-rename: try again
            if epoch >= 3:
                proc.send_signal(signal.SIGKILL); proc.wait(); killed_at = epoch; break
        time.sleep(0.05)
    assert killed_at is not None and killed_at < 20, 'the run was not killed mid-way'
    assert not (cut / 'metrics.json').exists()
    subprocess.run(_train(cut, '--resume'), check=True, capture_output=True, timeout=600)
    a, b = json.loads((full / 'metrics.json').read_text()), json.loads((cut / 'metrics.json').read_text())
    assert {k: a[k] for k in KEYS} == {k: b[k] for k in KEYS}
    log = [json.loads(l) for l in (cut / 'log.jsonl').read_text().splitlines()]
    assert [e['epoch'] for e in log][-1] == 20

def test_bad_option_is_an_argparse_error():
    r = subprocess.run([sys.executable, '-m', 'byoltheory.cli', 'train', '--ema', '0.5', '--no-stop-grad'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and '--no-stop-grad' in r.stderr

def test_missing_dataset_names_the_flag(tmp_path):
    r = subprocess.run(_train(tmp_path / 'x', '--dataset', 'cifar10', '--data-root', str(tmp_path / 'none'), epochs=1),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and '--download' in r.stderr and 'none' in r.stderr

@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / 'ddp'
    import socket
    with socket.socket() as sock: sock.bind(('127.0.0.1', 0)); port = sock.getsockname()[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(port),
           '-m', 'byoltheory.cli', 'train', '--epochs', '2', '--probe-epochs', '5', '--predictor', 'directpred',
           '--quiet', '--out', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / 'metrics.json').read_text())
    assert m['world_size'] == 2 and m['epochs'] == 2 and all(k in m for k in KEYS)
