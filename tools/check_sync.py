"""Fail when byoltheory/ is not exactly what `nbdev_export` makes of nbs/ (every module, subpackages included),
when the shipped ledger index is stale, or when a notebook is not clean (`nbdev_clean`). Works on a temporary copy,
so it never edits the checkout; `--fix` writes the ledger index (after `nbdev_export`)."""
import filecmp, json, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bin_dir = Path(sys.executable).parent

def _diff_trees(a: Path, b: Path, pattern: str):
    bad = []
    for f in sorted(set(p.relative_to(a) for p in a.glob(pattern)) | set(p.relative_to(b) for p in b.glob(pattern))):
        if '__pycache__' in f.parts: continue
        fa, fb = a / f, b / f
        if not (fa.exists() and fb.exists() and filecmp.cmp(fa, fb, shallow=False)): bad.append(str(f))
    return bad

def ledger_index():
    out = subprocess.run([sys.executable, '-c', 'import json, byoltheory.ledger as L; '
                          'print(json.dumps(L.ledger_index("."), indent=1))'],
                         cwd=root / 'nbs', capture_output=True, text=True, check=True).stdout
    return out

index_path = root / 'byoltheory' / 'ledger_index.json'
if '--fix' in sys.argv:
    index_path.write_text(ledger_index()); print(f"wrote {index_path.relative_to(root)}"); sys.exit(0)

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    shutil.copy(root / 'settings.ini', tmp / 'settings.ini')
    shutil.copytree(root / 'nbs', tmp / 'nbs')
    (tmp / 'byoltheory').mkdir()
    shutil.copy(root / 'byoltheory' / '__init__.py', tmp / 'byoltheory' / '__init__.py')
    subprocess.run([str(bin_dir / 'nbdev_export')], cwd=tmp, check=True)
    stale = _diff_trees(root / 'byoltheory', tmp / 'byoltheory', '**/*.py')
    subprocess.run([str(bin_dir / 'nbdev_clean')], cwd=tmp, check=True)
    dirty = _diff_trees(root / 'nbs', tmp / 'nbs', '*.ipynb')
index_stale = not index_path.exists() or index_path.read_text() != ledger_index()

if stale: print(f"byoltheory/ is out of sync with nbs/ in: {', '.join(stale)} -- run nbdev_export and commit both.")
if dirty: print(f"notebooks with unclean metadata: {', '.join(dirty)} -- run nbdev_clean and commit.")
if index_stale: print("byoltheory/ledger_index.json is stale -- run `python tools/check_sync.py --fix` and commit it.")
if stale or dirty or index_stale: sys.exit(1)
print("library in sync with notebooks; ledger index current; notebooks clean")
