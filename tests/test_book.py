"""The book's structure: the table of contents and the notebooks agree, every chapter opens
with the Colab install cell, notebooks are committed without outputs, the repo URL is in step."""
import json, re, subprocess, sys
from pathlib import Path
import pytest

def _toc_files(root):
    return re.findall(r'(?m)^\s*(?:root|-\s*file):\s*(\S+)\s*$', (root / '_toc.yml').read_text())

def _notebooks(root): return sorted((root / 'nbs').glob('*.ipynb'))

def test_toc_and_notebooks_agree(root):
    toc = _toc_files(root)
    assert len(toc) == len(set(toc)), 'a notebook is listed twice in _toc.yml'
    nbs = {f'nbs/{p.stem}' for p in _notebooks(root)}
    assert set(toc) == nbs, f'missing from _toc.yml: {nbs - set(toc)}; in _toc.yml but not in nbs/: {set(toc) - nbs}'
    assert toc[0] == 'nbs/00_index'

def test_toc_in_reading_order(root):
    toc = [Path(f).name for f in _toc_files(root)]
    assert toc == sorted(toc), 'chapters must appear in _toc.yml in the order of their numbers'

@pytest.mark.parametrize('nb', [p.name for p in sorted((Path(__file__).resolve().parents[1] / 'nbs').glob('*.ipynb'))])
def test_colab_install_cell(root, settings, nb):
    cells = json.loads((root / 'nbs' / nb).read_text())['cells']
    first_code = next(c for c in cells if c['cell_type'] == 'code')
    src = ''.join(first_code['source'])
    assert '"google.colab" in sys.modules' in src, f'{nb}: first code cell must be the Colab install cell'
    assert f'byoltheory[book] @ git+{settings["git_url"]}' in src

@pytest.mark.parametrize('nb', [p.name for p in sorted((Path(__file__).resolve().parents[1] / 'nbs').glob('*.ipynb'))])
def test_notebook_committed_without_outputs(root, nb):
    cells = json.loads((root / 'nbs' / nb).read_text())['cells']
    assert not any(c.get('outputs') for c in cells if c['cell_type'] == 'code'), f'{nb} has outputs: the book executes it'

def test_cell_ids_unique(root):
    "Cell ids are unique in each notebook (nbformat would silently renumber a duplicate on every build)."
    for p in _notebooks(root):
        ids = [c.get('id') for c in json.loads(p.read_text())['cells']]
        assert len(ids) == len(set(ids)), f"{p.name}: duplicate cell ids {sorted({i for i in ids if ids.count(i) > 1})}"

def test_gpu_cells_skip_execution(root):
    "A cell flagged `#| gpu` for nbdev must also carry Jupyter Book's skip-execution tag."
    for p in _notebooks(root):
        for c in json.loads(p.read_text())['cells']:
            if c['cell_type'] == 'code' and re.search(r'(?m)^#\|\s*gpu\b', ''.join(c['source'])):
                assert 'skip-execution' in c.get('metadata', {}).get('tags', []), f'{p.name}: gpu cell without skip-execution'

def test_repo_url_in_step(root):
    r = subprocess.run([sys.executable, str(root / 'tools' / 'sync_repo_url.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout

def test_ledger_names_only_real_items(root):
    from byoltheory.ledger import scan_notebooks, paper_items
    items = {i['item'] for i in paper_items()}
    assert {r['item'] for r in scan_notebooks(root / 'nbs')} <= items     # a mark naming a non-item is an error

def _code_cells(root):
    for p in _notebooks(root):
        for c in json.loads(p.read_text())['cells']:
            if c['cell_type'] == 'code': yield p.name, ''.join(c['source'])

def test_lines_fit_the_page(root):
    "Library and notebook code lines are at most 100 characters: code cells must not scroll sideways in the book."
    def lib_lines(f):                  # nbdev writes its generated `__all__` list 120 columns wide: not ours
        text = re.sub(r"(?ms)^__all__ = \[.*?\]\n", '', f.read_text())
        return text.splitlines()
    long = [f"{f.relative_to(root)}:{i}" for f in sorted((root / 'byoltheory').rglob('*.py')) if f.name != '_modidx.py'
            for i, l in enumerate(lib_lines(f), 1) if len(l) > 100]
    long += [f"{nb}: {l[:60]}…" for nb, src in _code_cells(root) for l in src.splitlines() if len(l) > 100]
    assert not long, f"{len(long)} lines over 100 characters, e.g. {long[:5]}"

def test_export_cells_are_short(root):
    "An exported cell is one idea, about 40 lines at most: longer ones are split (fastcore's @patch spreads a class)."
    big = [(nb, len(src.splitlines())) for nb, src in _code_cells(root)
           if re.search(r'(?m)^#\|\s*export\b', src) and len(src.splitlines()) > 42]
    assert not big, f"export cells over 42 lines: {big}"

def test_an_example_after_each_export(root):
    """fastcore's rhythm: an exported cell is followed, before the next export, by a code cell that uses or tests
    it -- at least 80 % of export cells overall and 60 % in every chapter (issue 48)."""
    is_export = lambda c: c['cell_type'] == 'code' and re.match(r'#\|\s*export\b', ''.join(c['source']))
    counts = {}
    for p in _notebooks(root):
        cells = json.loads(p.read_text())['cells']
        n = k = 0
        for i, c in enumerate(cells):
            if not is_export(c): continue
            n += 1
            for d in cells[i + 1:]:
                if is_export(d): break
                if d['cell_type'] == 'code' and ''.join(d['source']).strip(): k += 1; break
        if n: counts[p.name] = (k, n)
    low = {nb: f"{k}/{n}" for nb, (k, n) in counts.items() if k < 0.6 * n}
    assert not low, f"chapters with fewer than 60 % of export cells followed by an example: {low}"
    k, n = (sum(v[i] for v in counts.values()) for i in (0, 1))
    assert k >= 0.8 * n, f"{k} of {n} export cells followed by an example (< 80 %)"

def test_figures_fit_the_page(root):
    """No figure wider than the book's MAX_FIGURE_IN and no text smaller than MIN_FONT_PT in the notebooks or the
    library (chapter 97's rule: then every figure's text renders >= 9 px at the page's width; the browser check
    measures the built pages)."""
    import re
    from byoltheory.core import MAX_FIGURE_IN, MIN_FONT_PT
    wide, small = [], []
    files = sorted((root / 'nbs').glob('*.ipynb')) + sorted((root / 'byoltheory').rglob('*.py'))
    for f in files:
        text = f.read_text()
        wide += [f"{f.name}: figsize=({w}" for w in re.findall(r'figsize=\(?\s*([\d.]+)\s*,', text)
                 if float(w) > MAX_FIGURE_IN]
        small += [f"{f.name}: fontsize={s}" for s in re.findall(r'fontsize=(\d+)', text) if int(s) < MIN_FONT_PT]
    assert not wide, f"figures wider than {MAX_FIGURE_IN} in: {wide}"
    assert not small, f"text below {MIN_FONT_PT} pt: {small}"
