"""Fail when byoltheory/ is not exactly what `nbdev_export` makes of nbs/, or when a notebook
is not clean (`nbdev_clean`). Works on a temporary copy, so it never edits the checkout."""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bin_dir = Path(sys.executable).parent

def _diff_trees(a: Path, b: Path, pattern: str):
    bad = []
    for f in sorted(set(p.relative_to(a) for p in a.glob(pattern)) | set(p.relative_to(b) for p in b.glob(pattern))):
        fa, fb = a / f, b / f
        if not (fa.exists() and fb.exists() and filecmp.cmp(fa, fb, shallow=False)): bad.append(str(f))
    return bad

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    shutil.copy(root / 'settings.ini', tmp / 'settings.ini')
    shutil.copytree(root / 'nbs', tmp / 'nbs')
    (tmp / 'byoltheory').mkdir()
    shutil.copy(root / 'byoltheory' / '__init__.py', tmp / 'byoltheory' / '__init__.py')
    subprocess.run([str(bin_dir / 'nbdev_export')], cwd=tmp, check=True)
    stale = _diff_trees(root / 'byoltheory', tmp / 'byoltheory', '*.py')
    subprocess.run([str(bin_dir / 'nbdev_clean')], cwd=tmp, check=True)
    dirty = _diff_trees(root / 'nbs', tmp / 'nbs', '*.ipynb')

if stale: print(f"byoltheory/ is out of sync with nbs/ in: {', '.join(stale)} -- run nbdev_export and commit both.")
if dirty: print(f"notebooks with unclean metadata: {', '.join(dirty)} -- run nbdev_clean and commit.")
if stale or dirty: sys.exit(1)
print("library in sync with notebooks; notebooks clean")
