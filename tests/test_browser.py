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
