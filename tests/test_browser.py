"""The built book, opened in headless Chromium (tools/browser_check.py): MathJax renders without errors (offline),
theory chapters show equations, images load, internal links resolve, Colab links point at the right notebook, and
theorem blocks carry the paper's numbers. Slow: runs after `make book` has built _build/html."""
import importlib.util
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.mark.slow
def test_book_in_headless_chromium():
    html = ROOT / '_build' / 'html'
    if not (html / 'nbs' / '01_linear_model.html').exists(): pytest.skip('the book is not built (run make book)')
    spec = importlib.util.spec_from_file_location('browser_check', ROOT / 'tools' / 'browser_check.py')
    bc = importlib.util.module_from_spec(spec); spec.loader.exec_module(bc)
    chrome, driver = bc.find_browser()
    if not (chrome and driver): pytest.skip('Chromium / ChromeDriver not installed: ' + 'apt-get install chromium chromium-driver')
    code, res = bc.check(html, ROOT / '_build' / 'screenshots')      # prints the one-line summary
    assert code == 0, '\n'.join(res['failures'])
    assert res['pages'] == len(bc.toc_pages()) and res['equations'] > 100 and res['images'] > 10


def _browser_check():
    spec = importlib.util.spec_from_file_location('browser_check', ROOT / 'tools' / 'browser_check.py')
    bc = importlib.util.module_from_spec(spec); spec.loader.exec_module(bc)
    return bc


def _page(path, body):
    "A page shaped like the book's: a 676 px article column."
    path.write_text(f"<html><head><style>article {{width: 676px}}</style></head>"
                    f"<body><article>{body}</article></body></html>")


def _bad_against_good(bc, chrome, driver, tmp_path, bad, good) -> str:
    "The browser check's problems on page `bad` (returned as text); page `good` must have none."
    srv, drv = bc.serve(tmp_path), bc.make_driver(chrome, driver)
    try:
        found = {}
        for kind, body in [('bad', bad), ('good', good)]:
            _page(tmp_path / f'{kind}.html', body)
            drv.get(f"http://127.0.0.1:{srv.server_address[1]}/{kind}.html")
            found[kind] = bc.layout_problems(drv, tmp_path / f'{kind}.html', kind)
    finally:
        drv.quit(); srv.shutdown()
    assert found['good'] == [], found['good']
    return '\n'.join(found['bad'])


def test_layout_rules_fail_on_a_page_that_breaks_them(tmp_path):
    "The browser check's layout rules catch a 16-inch figure, a code cell that scrolls and a clipped table."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    bc = _browser_check()
    chrome, driver = bc.find_browser()
    if not (chrome and driver): pytest.skip('Chromium / ChromeDriver not installed')
    for name, width in [('wide.png', 16), ("fits.png", 8.0)]:
        fig = plt.figure(figsize=(width, 2))
        fig.savefig(tmp_path / name, dpi=100)
        plt.close(fig)
    long = 'x = ' + ' + '.join(['alpha_p'] * 30)
    cells = ''.join(f'<td>column {i} of a wide table</td>' for i in range(30))
    bad = (f'<img src="wide.png" style="max-width:100%"><div class="cell_input"><pre>{long}</pre></div>'
           f'<div style="overflow:hidden"><table><tr>{cells}</tr></table></div>')
    good = ('<img src="fits.png" style="max-width:100%"><div class="cell_input"><pre>x = 1</pre></div>'
            '<div><table><tr><td>a</td><td>b</td></tr></table></div>')
    text = _bad_against_good(bc, chrome, driver, tmp_path, bad, good)
    assert 'wide.png' in text and 'renders 5.3 px' in text, text   # 9 pt · 100/72 · 676/1600
    assert 'code cell scrolls sideways' in text and 'table is wider than the page' in text, text


def test_reading_rules_fail_on_a_page_that_breaks_them(tmp_path):
    """The browser check's reading rules: a word broken inside a table cell, a display equation wider
    than its column, a warning in a cell's output, a Markdown table printed as text; a page that keeps
    them passes."""
    bc = _browser_check()
    chrome, driver = bc.find_browser()
    if not (chrome and driver): pytest.skip('Chromium / ChromeDriver not installed')
    bad = ('<table><tr><td style="width:30px;max-width:30px;overflow-wrap:anywhere">holds</td>'
           '<td>fine</td></tr></table>'
           '<div style="width:200px"><mjx-container display="true" style="display:block;'
           'overflow:hidden"><mjx-math style="display:inline-block;width:500px">x</mjx-math>'
           '</mjx-container></div>'
           '<div class="cell_output"><div class="output stderr"><pre>UserWarning: x</pre></div>'
           '<div class="output stream"><pre>| a | b |\n|---|---|\n| 1 | 2 |</pre></div></div>')
    good = ('<table><tr><td>holds</td><td>within noise</td></tr></table>'
            '<div style="width:600px"><mjx-container display="true" style="display:block">'
            '<mjx-math style="display:inline-block;width:100px">x</mjx-math></mjx-container></div>'
            '<div class="cell_output"><div class="output stream"><pre>kNN 80.1</pre></div></div>')
    text = _bad_against_good(bc, chrome, driver, tmp_path, bad, good)
    for rule in ('a word breaks inside a table cell', 'display equation is wider than its column',
                 'a cell output is a warning or stderr', 'Markdown printed as plain text'):
        assert rule in text, (rule, text)
