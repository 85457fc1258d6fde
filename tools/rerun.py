"""The single re-run of every Fashion-MNIST grid at the calibrated scale (chapter 10b), from one
commit, over as many sessions as it takes.

The re-run's commit (its hash in results/rerun/COMMIT) holds the calibrated scale in SCALES; the
main line keeps the committed scale until every run exists, so the book stays whole meanwhile.
The runs are computed in a git worktree of that commit, two workers side by side, one torch
thread each; each finished run (its JSON and trace), the scale's baselines and the learning
curves are copied into results/rerun/fashion-mnist/ of this checkout, which commits them. Any
session resumes the same commit: finished runs (copied back into the worktree) are skipped, runs
locked by the other worker are left to it, and a run interrupted within a session resumes from
its checkpoint (the worktree lies outside the repository: a new session starts unfinished runs
again, so `collect` and commit before a session ends).

  .venv/bin/python tools/rerun.py status    what is finished, per grid, against the plan
  .venv/bin/python tools/rerun.py start     start the two workers in the background (needs native bf16)
  .venv/bin/python tools/rerun.py collect   copy finished files into results/rerun/ (safe while running)
  .venv/bin/python tools/rerun.py switch    once every run is there: results/rerun/ becomes the
                                            scale's results, the commit's scale change is applied
                                            (--check: say what is missing, change nothing)
  .venv/bin/python tools/rerun.py preview   the switch done in a throw-away clone with the runs so far:
                                            the complete grids' verdicts, every verdict a chapter
                                            asserts that they do not give, whether the book's form
                                            checks pass (tests/test_book.py), and which chapters that
                                            read only complete grids fail (--dest, --no-chapters),
                                            with the chapters' drafts applied
  .venv/bin/python tools/rerun.py draft     save the edits made to the preview's nbs/ as the chapters'
                                            drafts (results/rerun/chapters.diff), which `switch`
                                            applies after the scale change

At the end, on a CPU with native bfloat16: `collect`, stop the workers, then `preview` until every
chapter passes (edit the chapters in the preview's clone, `draft`, `preview` again); then `switch`,
`nbdev_export`, and the bit-for-bit repeats chapter 10b reads, `byoltheory reproduce GRID --scale
fashion-mnist --verify 1 --keep results/repeat/fashion-mnist.json` for GRID table1 and table6; then
`make test`, `make book`, and one commit.

The calibrated scale computes in bfloat16: on a CPU without native bfloat16 a run is emulated and
several times slower, and a grid must not mix two kinds of CPU (chapter 10), so `start` refuses
such a CPU and the grid runner refuses to add runs beside another kind's."""
import argparse, filecmp, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
STAGE = HERE / 'results' / 'rerun'
SCALE = 'fashion-mnist'
# the grids run first (the rest follow in the registry's order): Table 1 and its float32 twin,
# then Table 6 before Table 8 (Table 8's standard-length cells are Table 6's runs, copied)
FIRST = ('table1', 'table1-fp32', 'table6', 'table8')
CURVES = ('linear', 'directpred')  # one for each worker, after the grids
KEEP = ('calibration',)  # the scale folder's entries that are not the old scale's runs


def commit() -> str:
    path = STAGE / 'COMMIT'
    if not path.exists(): raise SystemExit(f"no re-run is set up: {path} names its commit")
    return path.read_text().split()[0]


def tree(sha) -> Path:
    "The worktree of the re-run's commit (created when missing)."
    w = HERE.parent / f'rerun-{sha[:10]}'
    if not w.exists():
        subprocess.run(['git', '-C', str(HERE), 'worktree', 'prune'], check=True)
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
import dataclasses, json
from byoltheory.reproduce import load_grids, run_path, run_config
from byoltheory.experiments.fashion_scale import CURVE_EPOCHS, curve_config
def run(g, c, s):
    cfg = run_config(g, c, {SCALE!r}, s)
    return dict(name=run_path('results', {SCALE!r}, g, c, s).name, precision=cfg.precision,
                work=cfg.subset * cfg.epochs, config=json.dumps(dataclasses.asdict(cfg)))
grids = {{n: g for n, g in load_grids().items() if {SCALE!r} in g.scales}}
plan = {{n: [run(g, c, s) for c in g.cells_at({SCALE!r}) for s in range(g.seeds_of(c, {SCALE!r}))]
        for n, g in grids.items()}}
curve = curve_config('linear')
print(json.dumps(dict(grids=plan, curve_epochs=CURVE_EPOCHS, curve_work=curve.subset * CURVE_EPOCHS)))
"""


def queue(plan) -> list:
    "The re-run's grids in the order they run: FIRST, then the others in the registry's order."
    return sorted(plan['grids'], key=lambda g: FIRST.index(g) if g in FIRST else len(FIRST))


def clear_old_scale(res):
    "Remove the old scale's runs from a results/fashion-mnist/ folder: all but KEEP."
    for p in res.iterdir():
        if p.name in KEEP: continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def prepare(w):
    "Once: the worktree's old-scale runs out, the staged finished ones in (so they are skipped)."
    mark, res = w / '.rerun-prepared', w / 'results' / SCALE
    if not mark.exists():
        clear_old_scale(res)
        mark.write_text('the old scale\'s runs were removed from results/ of this worktree\n')
    src = STAGE / SCALE
    for p in src.rglob('*.json') if src.exists() else []:
        dest = res / p.relative_to(src)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)


def _complete(p, plan) -> bool:
    "Whether a curve file holds every point of its plan (it is rewritten after each chunk)."
    pts = json.loads(p.read_text()).get('points', [])
    return bool(pts) and max(q['epoch'] for q in pts) >= plan['curve_epochs']


def finished(w, plan):
    "The worktree's finished files of the re-run: runs, traces, baselines, complete curves."
    res = w / 'results' / SCALE
    files = [p for g in plan['grids'] for p in sorted((res / g).glob('*.json'))]
    curves = [p for c in CURVES if (p := res / f'curve-{c}.json').exists() and _complete(p, plan)]
    return files + [p for p in [res / 'baselines.json'] if p.exists()] + curves


def _commits(p) -> set:
    "The commits a finished file records (none for a trace)."
    rec = json.loads(p.read_text())
    if 'git_commit' in rec: return {rec['git_commit']}
    return {v.get('git_commit') for v in rec.get('provenance', {}).values()}


def collect(w, plan, sha) -> int:
    """Copy finished files into results/rerun/; a file from another commit, or a staged file that
    differs from the worktree's, is an error (never overwritten). Returns how many were copied."""
    prepare(w)  # never the old scale's runs
    res, n = w / 'results' / SCALE, 0
    for p in finished(w, plan):
        if _commits(p) - {sha}:
            raise SystemExit(f"{p} was not computed by the re-run's commit {sha[:10]}")
        dest = STAGE / SCALE / p.relative_to(res)
        same_name_grows = p.name in ('baselines.json',)
        if dest.exists() and not same_name_grows and not filecmp.cmp(p, dest, shallow=False):
            raise SystemExit(f"{dest} differs from {p}: move one away, nothing was overwritten")
        if not dest.exists() or not filecmp.cmp(p, dest, shallow=False):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
            n += 1
    return n


def estimate(plan) -> dict:
    """Training work of the plan, runs with the same config counted once (the others are copied):
    {precision: million image-epochs}, curves included (bf16, the scale's precision)."""
    unique = {r['config']: r for g in plan['grids'].values() for r in g}
    work = {}
    for r in unique.values(): work[r['precision']] = work.get(r['precision'], 0) + r['work'] / 1e6
    work['bf16'] = work.get('bf16', 0) + len(CURVES) * plan['curve_work'] / 1e6
    return work


def status(w, plan):
    total = done = 0
    for g in queue(plan):
        have = {p.name for p in (STAGE / SCALE / g).glob('*.json')}
        k = sum(r['name'] in have for r in plan['grids'][g])
        total, done = total + len(plan['grids'][g]), done + k
        print(f"{g:12s} {k:4d} of {len(plan['grids'][g]):4d} runs")
    print(f"{'all grids':12s} {done:4d} of {total:4d} runs; curves: " +
          ', '.join(f"{c} {'there' if (STAGE / SCALE / f'curve-{c}.json').exists() else 'not yet'}"
                    for c in CURVES))
    speed = json.loads((w / 'results' / SCALE / 'calibration' / 'speed.json').read_text())
    rate = max(speed['seconds_per_image_epoch'].values())  # bf16, on the calibration's CPU
    work = estimate(plan)
    print("training work, each config once: " + ', '.join(f"{v:.1f} M image-epochs in {k}"
                                                           for k, v in work.items()) +
          f"; the bf16 part is {work['bf16'] * 1e6 * rate / 3600:.1f} h of training at "
          "speed.json's rate (evaluation and the float32 part on top)")
    left, spent = remaining(plan)
    print(f"still to run: {left / 1e6:.1f} M image-epochs (curves included), "
          f"{left * rate / 3600:.1f} h of training at that rate, about "
          f"{left * rate / 3600 / 2:.1f} h with two workers; the finished runs trained for "
          f"{spent / 3600:.1f} h")


def remaining(plan) -> tuple:
    """(image-epochs of the configs not yet staged, curves included; training seconds the staged
    runs recorded), each config counted once."""
    spent, todo = {}, {}
    for g, runs in plan['grids'].items():
        for r in runs:
            p = STAGE / SCALE / g / r['name']
            if p.exists(): spent[r['config']] = json.loads(p.read_text())['train_seconds']
            else: todo[r['config']] = r['work']
    left = sum(v for k, v in todo.items() if k not in spent)
    left += sum(plan['curve_work'] for c in CURVES if not (STAGE / SCALE / f'curve-{c}.json').exists())
    return left, sum(spent.values())


def missing(plan) -> list:
    "The re-run's planned files not yet in results/rerun/: runs, baselines, the two curves."
    src = STAGE / SCALE
    want = [src / g / r['name'] for g in queue(plan) for r in plan['grids'][g]]
    want += [src / 'baselines.json'] + [src / f'curve-{c}.json' for c in CURVES]
    return [p.relative_to(STAGE) for p in want if not p.exists()]


SCALE_CHANGE = ('byoltheory', 'nbs')  # where the re-run's commit changed the scale


def switch(sha, plan, check=False):
    """Once every planned file is staged: the old scale's runs in results/fashion-mnist/ (all but
    KEEP) give way to results/rerun/fashion-mnist/, results/rerun/ goes, and the re-run commit's
    change to the library and notebooks is applied to the working tree (where its context still
    matches, so the main line's later edits stay; else nothing changes and the change is made by
    hand). Commit it with the chapters' prose and verdicts made to follow."""
    gone, diff = missing(plan), scale_change(sha)
    ok = subprocess.run(['git', '-C', str(HERE), 'apply', '--check'], input=diff,
                        capture_output=True, text=True)
    print(f"{len(gone)} planned files not staged yet" + (f", e.g. {', '.join(map(str, gone[:3]))}"
                                                          if gone else ''))
    print(f"the scale change of {sha[:10]} " + ('applies' if ok.returncode == 0 else
                                                 f"does not apply: {ok.stderr.strip()}"))
    drafts = (STAGE / DRAFTS).read_text() if (STAGE / DRAFTS).exists() else ''
    bad = ok.returncode == 0 and drafts and drafts_fail(diff, drafts)
    if drafts: print(f"the chapters' drafts ({DRAFTS}) " + (f"do not apply after it: {bad}" if bad
                                                            else 'apply after it'))
    if check: return
    if gone: raise SystemExit("not switching: the re-run is incomplete (collect, or run on)")
    if ok.returncode: raise SystemExit("not switching: resolve the scale change by hand first")
    if bad: raise SystemExit(f"not switching: make {DRAFTS} apply first (preview, edit, draft)")
    if busy := _alive(tree(sha)): raise SystemExit(f"stop the workers first ({', '.join(busy)})")
    _switch_files(HERE, STAGE, diff)
    if drafts:
        subprocess.run(['git', '-C', str(HERE), 'apply'], input=drafts, text=True, check=True)
        print(f"the chapters' drafts applied ({DRAFTS}, kept in git history)")
    print(f"switched: {HERE / 'results' / SCALE} holds the re-run of {sha[:10]}; now nbdev_export, "
          "make the chapters follow the new runs, and commit")


def drafts_fail(diff, drafts) -> str:
    """Why the chapters' drafts would not apply after the scale change `diff`, on this checkout's
    committed files ('' when they would): both applied to a scratch index, nothing else touched."""
    with tempfile.NamedTemporaryFile() as idx:
        env = dict(os.environ, GIT_INDEX_FILE=idx.name)
        git = lambda *a, **k: subprocess.run(['git', '-C', str(HERE), *a], env=env, text=True,
                                             capture_output=True, **k)
        git('read-tree', 'HEAD', check=True)
        git('apply', '--cached', input=diff, check=True)
        r = git('apply', '--cached', '--check', input=drafts)
        return r.stderr.strip() if r.returncode else ''


def _switch_files(root, stage, diff):
    "In checkout `root`: the old scale's runs out, `stage`'s in, `stage` gone, `diff` applied."
    res = root / 'results' / SCALE
    clear_old_scale(res)
    for p in (stage / SCALE).iterdir(): shutil.move(str(p), res / p.name)
    shutil.rmtree(stage)
    subprocess.run(['git', '-C', str(root), 'apply'], input=diff, text=True, check=True)


def scale_change(sha) -> str:
    "The re-run commit's change to the library and notebooks (the scale), as a diff."
    return subprocess.run(['git', '-C', str(HERE), 'diff', f'{sha}^', sha, '--', *SCALE_CHANGE],
                          capture_output=True, text=True, check=True).stdout


READS = re.compile(r"""['"]([a-z0-9-]+)['"],\s*['"]""" + SCALE + """['"]""")


SOME_GRIDS = re.compile(r"(results_dir|RESULTS)[\s\S]*(['\"]" + SCALE + r"['\"]|CPU_SCALES|MAIN_SCALE)"
                        r"|(['\"]" + SCALE + r"['\"]|CPU_SCALES|MAIN_SCALE)[\s\S]*(results_dir|RESULTS)")


def chapters_reading(nbs: Path, grids) -> dict:
    """{chapter: the re-run grids it reads at SCALE} of the notebooks in `nbs` that read any; a
    notebook that reads the scale's results without naming a grid (a loop over the grids) is
    taken to read them all."""
    out = {}
    for nb in sorted(nbs.glob('*.ipynb')):
        src = ''.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'])
        if got := sorted(set(READS.findall(src)) & set(grids)): out[nb.name] = got
        elif SOME_GRIDS.search(src): out[nb.name] = sorted(grids)
    return out


PREVIEW = """
import json
from byoltheory.report import claims_table, claim_rows
for g in {grids!r}:
    print('### ' + g); print(claims_table(g, {scale!r}, out='results')); print()
got = {{g: {{r['claim'].id: r['verdict'] for r in claim_rows(g, {scale!r}, out='results')}}
       for g in {grids!r}}}
print('VERDICTS ' + json.dumps(got))
"""


def _code(src: str) -> str:
    "A code cell's Python: its magics and shell lines blanked."
    return '\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in src.splitlines())


def chapter_verdicts(nbs: Path) -> list:
    """The verdicts the chapters in `nbs` assert at SCALE: (chapter, grid, {claim: verdict}) for
    every `expect(grid, scale, {...})` whose scale is SCALE or a variable (a loop over the scales),
    read from the source, nothing run."""
    import ast
    out = []
    for nb in sorted(nbs.glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            if c['cell_type'] != 'code' or 'expect(' not in (src := ''.join(c['source'])): continue
            for call in ast.walk(ast.parse(_code(src))):
                if not (isinstance(call, ast.Call) and getattr(call.func, 'id', '') == 'expect'
                        and len(call.args) == 3): continue
                grid, scale, want = call.args
                if isinstance(scale, ast.Constant) and scale.value != SCALE: continue
                try: out.append((nb.name, ast.literal_eval(grid), ast.literal_eval(want)))
                except ValueError: continue  # not written out in the source
    return out


def verdict_changes(asserted: list, got: dict) -> list:
    """Lines naming each verdict a chapter asserts (`chapter_verdicts`) that the runs (`got`:
    {grid: {claim: verdict}}, complete grids only) do not give."""
    return [f"{nb}: {g} {k}: the chapter says {v!r}, the runs give {got[g].get(k)!r}"
            for nb, g, want in asserted if g in got
            for k, v in want.items() if got[g].get(k) != v]


def preview(sha, plan, dest: Path, chapters=True):
    """Switch a throw-away clone at `dest` with the runs staged so far (nothing here changes), then
    print the verdicts of every complete grid, each verdict a chapter's `expect` asserts that they
    do not give (all of them, where a chapter's test stops at the first), check the book's form
    (tests/test_book.py, which the drafts must pass too), and run the chapters (nbdev_test) that
    read only complete grids: what the switch will have to rewrite, before the re-run ends."""
    if dest.exists():
        if not (dest / '.rerun-preview').exists():
            raise SystemExit(f"{dest} exists and is not a preview: choose another --dest")
        shutil.rmtree(dest)
    subprocess.run(['git', 'clone', '-q', str(HERE), str(dest)], check=True)
    (dest / '.rerun-preview').write_text(f'a preview of the switch to {sha}\n')
    if (STAGE / SCALE).exists():  # staged but not committed yet: in the preview too
        shutil.copytree(STAGE / SCALE, dest / 'results' / 'rerun' / SCALE, dirs_exist_ok=True)
    drafts = (STAGE / DRAFTS).read_text() if (STAGE / DRAFTS).exists() else ''
    _switch_files(dest, dest / 'results' / 'rerun', scale_change(sha))
    bin_ = Path(sys.executable).parent
    env = dict(os.environ, PYTHONPATH=str(dest), OMP_NUM_THREADS='1',
               PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}")
    git = lambda *a, **k: subprocess.run(['git', '-C', str(dest), *a], check=True, **k)
    git('add', '-A')  # the switched state: `draft` saves the chapters' edits made on top of it
    git('-c', 'user.name=preview', '-c', 'user.email=preview@localhost', 'commit', '-qm', 'switched')
    if drafts:
        git('apply', input=drafts, text=True)
        print(f"the chapters' drafts ({STAGE / DRAFTS}) applied on top")
    subprocess.run([bin_ / 'nbdev_export'], cwd=dest, env=env, check=True)
    res = dest / 'results' / SCALE
    done = [g for g in queue(plan) if all((res / g / r['name']).exists()
                                          for r in plan['grids'][g])]
    print(f"complete grids: {', '.join(done) or 'none'}; the rest are not read\n")
    if done:
        text, _, got = in_tree(dest, PREVIEW.format(grids=done, scale=SCALE)).rpartition('VERDICTS ')
        print(text)
        changes = verdict_changes(chapter_verdicts(dest / 'nbs'), json.loads(got))
        print("verdicts the chapters assert that the complete grids do not give: " +
              ('none' if not changes else '\n  ' + '\n  '.join(changes)) + '\n')
    print(form_check(dest, env))
    if not chapters: return
    for nb, grids in chapters_reading(dest / 'nbs', plan['grids']).items():
        if wait := [g for g in grids if g not in done]:
            print(f"{nb}: not run (needs {', '.join(wait)})"); continue
        r = subprocess.run([bin_ / 'nbdev_test', '--path', f'nbs/{nb}'], cwd=dest, env=env,
                           capture_output=True, text=True)
        print(f"{nb}: " + ('passes' if r.returncode == 0 else
                           'FAILS (the first failing cell only)\n    ' + first_failure(r.stdout + r.stderr)))


def form_check(dest: Path, env=None) -> str:
    "tests/test_book.py in the clone at `dest` (line lengths, cell sizes, figures, the ledger), said."
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                        'tests/test_book.py'], cwd=dest, env=env, capture_output=True, text=True)
    said = [l for l in r.stdout.splitlines() if l.startswith(('FAILED', 'E  '))]
    return ("the book's form (tests/test_book.py): " +
            ('passes' if r.returncode == 0 else '\n    '.join(['FAILS', *said])))


DRAFTS = 'chapters.diff'  # in STAGE: the chapters' edits drafted before the switch (`draft`)


def draft(dest: Path):
    """Save the chapters' edits made in the preview at `dest` (nbs/, on top of its switched state)
    as STAGE/DRAFTS, which the next `preview` and `switch` apply: prose, verdicts and asserts of the
    grids already complete can be rewritten while the rest still run. Commit it with the runs."""
    if not (dest / '.rerun-preview').exists(): raise SystemExit(f"{dest} is not a preview")
    subprocess.run([Path(sys.executable).parent / 'nbdev_clean'], cwd=dest, check=True,
                   env=dict(os.environ, PYTHONPATH=str(dest)))
    diff = subprocess.run(['git', '-C', str(dest), 'diff', 'HEAD', '--', 'nbs'],
                          capture_output=True, text=True, check=True).stdout
    if not diff: raise SystemExit(f"no edits to the chapters in {dest}/nbs: nothing saved")
    STAGE.mkdir(parents=True, exist_ok=True)
    (STAGE / DRAFTS).write_text(diff)
    print(f"saved {diff.count(chr(10))} lines of the chapters' edits to {STAGE / DRAFTS}")


def first_failure(log: str) -> str:
    "From nbdev_test's output: the failing cell's number, the failing line and the error."
    lines = [l for l in log.splitlines() if l.strip()]
    cell = next((l.strip() for l in lines if l.startswith('While Executing Cell')), '')
    end = next((i for i, l in enumerate(lines) if l.startswith('nbdev Tests Failed')), len(lines))
    return '\n    '.join([cell, *lines[max(0, end - 4):end]])


WORKER = """set -u
for g in {grids}; do echo "== $(date +%H:%M:%S) $g"
  {py} -m byoltheory.cli reproduce "$g" --scale {scale} --out results || echo "!! $g"; done
for c in {curves}; do echo "== $(date +%H:%M:%S) curve $c"
  {py} -m byoltheory.cli curve "$c" --out results || echo "!! curve $c"; done
echo "== $(date +%H:%M:%S) done"
"""


def _alive(w) -> list:
    "The re-run's workers still running (their pid files in the worktree)."
    alive = []
    for f in w.glob('rerun-worker*.pid'):
        try: os.kill(int(f.read_text()), 0)
        except (ProcessLookupError, ValueError): continue
        alive.append(f.stem)
    return alive


def start(w, plan, workers):
    sys.path.insert(0, str(HERE))
    from byoltheory.byol import cpu_kind
    from byoltheory.reproduce import other_cpu_runs
    if busy := _alive(w): raise SystemExit(f"the re-run is running already ({', '.join(busy)})")
    cpu = cpu_kind()
    if not cpu['native_bf16']:
        raise SystemExit(f"this CPU ({cpu['model']}, {cpu['capability']}) has no native bfloat16: "
                         "the calibrated scale's runs would be emulated, several times slower, "
                         "and a grid must not mix kinds of CPU; run the re-run on a CPU with "
                         "avx512_bf16 or amx_bf16")
    prepare(w)
    if other := other_cpu_runs(w / 'results', SCALE):
        raise SystemExit(f"{other[0]} was made on another kind of CPU than this one ({cpu}): "
                         "a grid must not mix kinds of CPU")
    env, order = dict(os.environ, PYTHONPATH=str(w), OMP_NUM_THREADS='1'), queue(plan)
    for k in range(workers):
        script = WORKER.format(grids=' '.join(order[k % 2:] + order[:k % 2]), scale=SCALE,
                               py=sys.executable, curves=' '.join(CURVES[k::workers]))
        log = open(w / f'rerun-worker{k}.log', 'a')
        proc = subprocess.Popen(['bash', '-c', script], cwd=w, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        (w / f'rerun-worker{k}.pid').write_text(str(proc.pid))
        print(f"worker {k} started: log in {w / f'rerun-worker{k}.log'}")


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('what', choices=('status', 'start', 'collect', 'switch', 'preview', 'draft'))
    ap.add_argument('--check', action='store_true', help='switch: report only, change nothing')
    ap.add_argument('--dest', type=Path, default=Path('/tmp/rerun-preview'),
                    help='preview, draft: where the throw-away switched clone is')
    ap.add_argument('--no-chapters', action='store_true', help='preview: verdicts only')
    ap.add_argument('--workers', type=int, default=2, help='processes side by side (default 2)')
    a = ap.parse_args()
    sha = commit()
    w = tree(sha)
    plan = json.loads(in_tree(w, PLAN))
    if a.what == 'start': start(w, plan, a.workers)
    elif a.what == 'switch': switch(sha, plan, check=a.check)
    elif a.what == 'preview': preview(sha, plan, a.dest.resolve(), chapters=not a.no_chapters)
    elif a.what == 'draft': draft(a.dest.resolve())
    elif a.what == 'collect': print(f"{collect(w, plan, sha)} files copied into {STAGE / SCALE}")
    else: status(w, plan)
