"""Stop `byoltheory train` with Ctrl-C (SIGINT) and SIGTERM many times, mid-run, and check each stop.

    python tools/signal_check.py [--loops 8] [--busy]

Every loop starts a small digits run, sends the signal once a checkpoint exists, and checks that the run
exits within 30 s with the exit code 128 + signal and a message naming the checkpoint and `--resume`;
then it resumes the run to the end and checks that the metrics equal those of one uninterrupted run,
bit for bit. The children start with SIGINT ignored, as a job started with `&` by a script does (the
harder case). --busy keeps the other core busy with a spinning process while it runs."""
import argparse, json, multiprocessing, os, signal, subprocess, sys, tempfile, time
from pathlib import Path
from byoltheory.runs import checkpoint_path, metrics_path

ARGS = ['--subset', '256', '--batch-size', '32', '--probe-epochs', '3', '--quiet', '--threads', '1',
        '--epochs', '12']
KEYS = ('top1', 'top5', 'best_top1_official', 'knn_top1', 'feature_std', 'effective_rank')
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def train(out, *extra, **kw):
    cmd = [sys.executable, '-m', 'byoltheory.cli', 'train', '--out', str(out), *ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN), **kw)


def spin():
    while True: pass


def one(tmp, sig, reference):
    out = tmp / f'{sig.name}-{time.time_ns()}'
    proc = train(out)
    while not checkpoint_path(out).exists():
        if proc.poll() is not None: raise SystemExit(f"finished before the signal: {proc.stderr.read()}")
        time.sleep(0.02)
    time.sleep(0.5)
    t0 = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    took = time.time() - t0
    ok = (proc.returncode == 128 + sig and 'interrupted' in err and '--resume' in err
          and 'Traceback' not in err and took < 30)
    import torch
    epoch = torch.load(checkpoint_path(out), weights_only=False)['epoch']
    r = train(out, '--resume')
    r.communicate(timeout=600)
    m = json.loads(metrics_path(out).read_text())
    same = r.returncode == 0 and all(m[k] == reference[k] for k in KEYS)
    return ok and same, took, epoch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--loops', type=int, default=8)
    ap.add_argument('--busy', action='store_true', help='keep another core busy meanwhile')
    a = ap.parse_args()
    busy = multiprocessing.Process(target=spin, daemon=True) if a.busy else None
    if busy: busy.start()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            ref = train(tmp / 'reference')
            ref.communicate(timeout=600)
            reference = json.loads(metrics_path(tmp / 'reference').read_text())
            results = []
            for i in range(a.loops):
                for sig in (signal.SIGINT, signal.SIGTERM):
                    ok, took, epoch = one(tmp, sig, reference)
                    results.append(ok)
                    print(f"{sig.name:7s} loop {i + 1}: exit after {took:4.1f} s at epoch {epoch}, "
                          f"{'ok: message, exit code, resumed bit for bit' if ok else 'FAILED'}",
                          flush=True)
    finally:
        if busy: busy.terminate()
    print(f"{sum(results)} of {len(results)} stops clean")
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
