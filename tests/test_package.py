"""The package installs, imports, has a version and a working console script."""
import os, shutil, subprocess, sys, venv
from pathlib import Path
import pytest
import byoltheory

def test_version_matches_settings(settings):
    assert byoltheory.__version__ == settings['version']

def test_modules_import():
    from byoltheory import cli, ledger, linear  # noqa: F401
    assert callable(linear.byol_flow) and callable(cli.main)

def test_a_run_imports_no_more_than_it_uses(tmp_path):
    """torchvision costs 2.5 s to import (0.3 s once torch's optimisers have loaded torch._dynamo),
    scikit-learn 1.6 s: in every process (each CLI command, each chapter's kernel). A run on the
    digits with the small ConvNet needs neither: only ResNet-18, torchvision's datasets and its
    per-image augmentations do. The run still records torchvision's version."""
    code = ("import sys, byoltheory.byol, byoltheory.reproduce, byoltheory.evaluate\n"
            "from byoltheory.byol import TrainConfig, train\n"
            "cfg = TrainConfig(epochs=1, subset=64, batch_size=32, probe_epochs=1, threads=1)\n"
            "r = train(cfg, sys.argv[1], progress=False)\n"
            "print(*[m in sys.modules for m in ('torchvision', 'sklearn')], r['torchvision'])")
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'run')], capture_output=True,
                         text=True, check=True)
    import torchvision
    assert out.stdout.split() == ['False', 'False', torchvision.__version__], out

def _console_script():
    exe = Path(sys.executable).parent / 'byoltheory'
    return str(exe) if exe.exists() else shutil.which('byoltheory')

def test_declared_requirements(settings):
    "What a plain `pip install` user needs is declared: the default dataset needs scikit-learn, chapters fastcore."
    req = settings['requirements']
    for name in ('torch', 'torchvision', 'numpy', 'scipy', 'matplotlib', 'tqdm', 'scikit-learn', 'fastcore'):
        assert name in req, name
    assert 'nbdev' in settings['book_requirements'] and 'ipykernel' in settings['book_requirements']

def test_console_script_help():
    exe = _console_script()
    assert exe, 'the byoltheory console script is not installed'
    out = subprocess.run([exe, '--help'], capture_output=True, text=True, check=True).stdout
    assert 'usage: byoltheory' in out and 'ledger' in out

def test_console_script_rejects_bad_option():
    r = subprocess.run([_console_script(), 'ledger', '--no-such-option'], capture_output=True, text=True)
    assert r.returncode == 2 and '--no-such-option' in r.stderr

def test_pip_install_into_fresh_venv(tmp_path, root):
    "`pip install .` (not editable) works in a brand-new venv and installs every module of the library."
    src = tmp_path / 'src'            # build from a copy: setuptools writes build/ next to setup.py
    shutil.copytree(root, src, ignore=shutil.ignore_patterns('.venv', '_build', '.git', 'build', '*.egg-info', '__pycache__'))
    env_dir = tmp_path / 'venv'
    venv.create(env_dir, with_pip=True)
    py = env_dir / 'bin' / 'python'
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    # --no-deps: torch & co. are large and already known to install; this checks *our* packaging.
    subprocess.run([str(py), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '--no-deps', str(src)],
                   check=True, env=env, cwd=tmp_path)
    out = subprocess.run([str(py), '-c', 'import byoltheory, importlib.util, pathlib; '
                          'p = pathlib.Path(byoltheory.__file__).parent; print(byoltheory.__version__); '
                          'print(" ".join(sorted(f.name for f in p.glob("*.py"))))'],
                         capture_output=True, text=True, check=True, env=env, cwd=tmp_path).stdout.split('\n')
    assert out[0] == byoltheory.__version__
    installed = set(out[1].split())
    expected = {f.name for f in (root / 'byoltheory').glob('*.py')}
    assert expected <= installed, expected - installed
    # the experiment modules, the ledger index, and the committed results (package data) ship with it
    probe = ('import byoltheory.experiments.symmetry, byoltheory.ledger as L, byoltheory.core as C; '
             'print(L.INDEX.exists()); print(C.results_dir())')
    shipped = subprocess.run([str(py), '-c', probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    if 'No module named' not in shipped.stderr:           # --no-deps: importing may need torch, absent there
        assert shipped.stdout.split('\n')[0] == 'True' and 'byoltheory/_book/results' in shipped.stdout
    assert 'site-packages' in subprocess.run([str(py), '-c', 'import byoltheory; print(byoltheory.__file__)'],
                                             capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert (env_dir / 'bin' / 'byoltheory').exists(), 'console script missing from a plain install'
    # what results_dir() and nbs_dir() find outside a clone: package data, wherever pip put it
    book = next((env_dir / 'lib').glob('python3*/site-packages')) / 'byoltheory' / '_book'
    assert (book / 'results' / 'digits-small' / 'baselines.json').exists()
    assert {p.name for p in (book / 'nbs').glob('*.ipynb')} == {
        p.name for p in (root / 'nbs').glob('*.ipynb')}
