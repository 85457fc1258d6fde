"""Re-run a committed run with the code of the commit that made it (or of --commit), on this
machine, and add the re-run -- both commits, both CPUs, every metric's difference -- to a record.

`byoltheory reproduce GRID --verify 1 --keep FILE` re-runs with this checkout's code; when the two
disagree, this tells the code's part from the CPU's: a run that differs even when re-run by its
own commit differs because of the machine.

  .venv/bin/python tools/verify_at.py results/fashion-mnist-10k/table6/<run>.json --keep FILE
"""
import argparse, json, subprocess, sys, tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
from byoltheory.core import read_json, write_json  # noqa: E402
from byoltheory.reproduce import kept_rerun  # noqa: E402

TRAIN = """import json, sys
from byoltheory.byol import TrainConfig, train
rec = json.load(open(sys.argv[1]))
m = train(TrainConfig(**rec['config']), sys.argv[2], progress=False)
print(json.dumps({k: v for k, v in m.items() if isinstance(v, (int, float))}))
"""


def rerun_at(path, commit) -> dict:
    "The metrics of run file `path` trained again by `commit`'s code (in a temporary worktree)."
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / 'tree'
        subprocess.run(['git', '-C', str(HERE), 'worktree', 'add', '-q', '--detach', str(tree),
                        commit], check=True)
        try:
            out = subprocess.run([sys.executable, '-c', TRAIN, str(Path(path).resolve()),
                                  str(Path(tmp) / 'run')], cwd=tree, check=True, text=True,
                                 capture_output=True, env={'PYTHONPATH': str(tree),
                                                           'OMP_NUM_THREADS': '1',
                                                           'PATH': '/usr/bin:/bin'}).stdout
        finally:
            subprocess.run(['git', '-C', str(HERE), 'worktree', 'remove', '--force', str(tree)])
    return json.loads(out.strip().splitlines()[-1])


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('run', help='a committed run file, results/<scale>/<grid>/<cell>-seed<k>.json')
    ap.add_argument('--commit', default=None, help="the code to re-run it with (default: the "
                    "commit that made it)")
    ap.add_argument('--keep', required=True, metavar='FILE', help='the record to add it to')
    a = ap.parse_args()
    rec = read_json(a.run, 'it must be a run file')
    commit = a.commit or rec['git_commit']
    again = rerun_at(a.run, commit)
    scale = Path(a.run).resolve().parents[1].name  # its folder's: the name it records may be old
    row = kept_rerun(rec, again, rec['grid'], scale, rec['cell'], rerun_by=commit)
    kept = read_json(a.keep, 'it must be a record of re-runs') if Path(a.keep).exists() else []
    write_json(a.keep, kept + [row])
    print(f"{a.run}: re-run by {commit[:10]}, largest difference "
          f"{max(abs(v) for v in row['differences'].values()):g}")
