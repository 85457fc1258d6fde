"""The single re-run of every Fashion-MNIST grid at the calibrated scale (chapter 10b), from one
commit, over as many sessions as it takes.

The re-run's commit (its hash in results/rerun/COMMIT) holds the calibrated scale in SCALES; the
main line keeps the committed scale until every run exists, so the book stays whole meanwhile.
The runs are computed in a git worktree of that commit, two workers side by side, one torch
thread each; each finished run (its JSON and trace), the scale's baselines and the learning
curves are copied into results/rerun/fashion-mnist/ of this checkout, which commits them. Any
session resumes the same commit: finished runs (copied back into the worktree) are skipped, an
interrupted one resumes from its checkpoint, and runs locked by the other worker are left to it.

  .venv/bin/python tools/rerun.py status    what is finished, per grid, against the plan
  .venv/bin/python tools/rerun.py start     start the two workers in the background (needs native bf16)
  .venv/bin/python tools/rerun.py collect   copy finished files into results/rerun/ (safe while running)

The calibrated scale computes in bfloat16: on a CPU without native bfloat16 a run is emulated and
several times slower, and a grid must not mix two kinds of CPU (chapter 10), so `start` refuses
such a CPU and the grid runner refuses to add runs beside another kind's."""
import argparse, filecmp, json, os, shutil, subprocess, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
STAGE = HERE / 'results' / 'rerun'
SCALE = 'fashion-mnist'
# table6 before table8 (Table 8's standard-length cells are Table 6's runs, copied as twins),
# table1 and its float32 twin first (the precision check decides nothing else, but reads early)
QUEUE = ('table1', 'table1-fp32', 'table6', 'table8', 'table3', 'fig2', 'table2', 'table5',
         'fig6', 'table7')
CURVES = ('linear', 'directpred')
KEEP = ('calibration',)  # the scale folder's entries that are not the old scale's runs


def commit() -> str:
    path = STAGE / 'COMMIT'
    if not path.exists(): raise SystemExit(f"no re-run is set up: {path} names its commit")
    return path.read_text().split()[0]


def tree(sha) -> Path:
    "The worktree of the re-run's commit (created when missing)."
    w = HERE.parent / f'rerun-{sha[:10]}'
    if not w.exists():
        subprocess.run(['git', '-C', str(HERE), 'worktree', 'add', '--detach', str(w), sha],
                       check=True)
    head = subprocess.run(['git', '-C', str(w), 'rev-parse', 'HEAD'], capture_output=True,
                          text=True, check=True).stdout.strip()
    if head != sha: raise SystemExit(f"{w} is at {head[:10]}, not at the re-run's {sha[:10]}")
    return w


def in_tree(w, code) -> str:
    "Run Python `code` with the worktree's library (its SCALES), return its output."
    env = dict(os.environ, PYTHONPATH=str(w), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-c', code], cwd=w, env=env, capture_output=True,
                          text=True, check=True).stdout


PLAN = f"""
import json
from byoltheory.reproduce import load_grids, run_path
grids = load_grids()
plan = {{g: [run_path('results', {SCALE!r}, grids[g], c, s).name
            for c in grids[g].cells_at({SCALE!r}) for s in range(grids[g].seeds_of(c, {SCALE!r}))]
        for g in {QUEUE!r}}}
print(json.dumps(plan))
"""


def prepare(w):
    "Once: the worktree's old-scale runs out, the staged finished ones in (so they are skipped)."
    mark, res = w / '.rerun-prepared', w / 'results' / SCALE
    if not mark.exists():
        for p in res.iterdir():
            if p.name in KEEP: continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        mark.write_text('the old scale\'s runs were removed from results/ of this worktree\n')
    src = STAGE / SCALE
    for p in src.rglob('*.json') if src.exists() else []:
        dest = res / p.relative_to(src)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)


def finished(w):
    "The worktree's finished files of the re-run: runs, traces, baselines, curves."
    res = w / 'results' / SCALE
    files = [p for g in QUEUE for p in (res / g).glob('*.json')]
    return files + [p for p in [res / 'baselines.json', *(res / f'curve-{c}.json' for c in CURVES)]
                    if p.exists()]


def collect(w) -> int:
    """Copy finished files into results/rerun/; a staged file that differs from the worktree's is
    an error (never overwritten). Returns how many were copied."""
    res, n = w / 'results' / SCALE, 0
    for p in finished(w):
        dest = STAGE / SCALE / p.relative_to(res)
        same_name_grows = p.name in ('baselines.json',) or p.name.startswith('curve-')
        if dest.exists() and not same_name_grows and not filecmp.cmp(p, dest, shallow=False):
            raise SystemExit(f"{dest} differs from {p}: move one away, nothing was overwritten")
        if not dest.exists() or not filecmp.cmp(p, dest, shallow=False):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
            n += 1
    return n


def status(w):
    plan = json.loads(in_tree(w, PLAN))
    total = done = 0
    for g, names in plan.items():
        have = {p.name for p in (STAGE / SCALE / g).glob('*.json')}
        k = sum(n in have for n in names)
        total, done = total + len(names), done + k
        print(f"{g:12s} {k:4d} of {len(names):4d} runs")
    print(f"{'all grids':12s} {done:4d} of {total:4d} runs; curves: " +
          ', '.join(f"{c} {'there' if (STAGE / SCALE / f'curve-{c}.json').exists() else 'not yet'}"
                    for c in CURVES))


WORKER = """set -u
for g in {grids}; do echo "== $(date +%H:%M:%S) $g"
  {py} -m byoltheory.cli reproduce "$g" --scale {scale} --out results || echo "!! $g"; done
for c in {curves}; do echo "== $(date +%H:%M:%S) curve $c"
  {py} -m byoltheory.cli curve "$c" --out results || echo "!! curve $c"; done
echo "== $(date +%H:%M:%S) done"
"""


def start(w, workers):
    sys.path.insert(0, str(HERE))
    from byoltheory.byol import cpu_kind
    cpu = cpu_kind()
    if not cpu['native_bf16']:
        raise SystemExit(f"this CPU ({cpu['model']}, {cpu['capability']}) has no native bfloat16: "
                         "the calibrated scale's runs would be emulated, several times slower, "
                         "and a grid must not mix kinds of CPU; run the re-run on a CPU with "
                         "avx512_bf16 or amx_bf16")
    prepare(w)
    env = dict(os.environ, PYTHONPATH=str(w), OMP_NUM_THREADS='1')
    for k in range(workers):
        order = QUEUE if k % 2 == 0 else QUEUE[1:] + QUEUE[:1]  # start on different grids
        script = WORKER.format(grids=' '.join(order), scale=SCALE, py=sys.executable,
                               curves=' '.join(CURVES if k % 2 == 0 else CURVES[::-1]))
        log = open(w / f'rerun-worker{k}.log', 'a')
        subprocess.Popen(['bash', '-c', script], cwd=w, env=env, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
        print(f"worker {k} started: log in {w / f'rerun-worker{k}.log'}")


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('what', choices=('status', 'start', 'collect'))
    ap.add_argument('--workers', type=int, default=2, help='processes side by side (default 2)')
    a = ap.parse_args()
    w = tree(commit())
    if a.what == 'start': start(w, a.workers)
    elif a.what == 'collect': print(f"{collect(w)} files copied into {STAGE / SCALE}")
    else: status(w)
