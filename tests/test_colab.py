"""A chapter runs top to bottom as in Colab, and chapters run from a Debian-layout install (slow;
`make book` runs them). The book build executes every chapter already; these tests check what it
cannot: the chapters' own install cell in a Colab-like environment, and the package's data found
from outside the repository.

A fresh venv gets what Colab has preinstalled (torch, torchvision and what they need, linked
from this venv; ipykernel) and a stand-in `google.colab` module imported at start-up, as Colab
does. Nothing else: the chapters' own install cell (`%pip install "byoltheory[book] @ git+…"`)
installs the package from its declared requirements, with git redirected to this repository's
committed HEAD. Each chapter is then executed from a folder outside the repository, cells tagged
`skip-execution` (the GPU cells) left out as in the book, and must finish without an error."""
import json, os, re, subprocess, sys, venv
from importlib import metadata
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
PREINSTALLED = ('torch', 'torchvision', 'ipykernel')


def _closure(names):
    "The installed distributions `names` need, recursively (no extras)."
    from packaging.requirements import Requirement
    seen, todo = {}, list(names)
    while todo:
        name = todo.pop().lower().replace('_', '-')
        if name in seen: continue
        try:
            dist = seen[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for req in map(Requirement, dist.requires or []):
            if req.marker is None or req.marker.evaluate({'extra': ''}): todo.append(req.name)
    return seen.values()


def _link_preinstalled(target: Path):
    "Symlink the files of torch, torchvision, ipykernel and their dependencies into `target`."
    target.mkdir()
    for dist in _closure(PREINSTALLED):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith('..')}
        for top in tops:
            src = Path(dist.locate_file(top))
            if src.exists() and not (target / top).exists() and top != 'bin':
                (target / top).symlink_to(src)


def _colab_venv(tmp: Path) -> Path:
    env_dir = tmp / 'venv'
    venv.create(env_dir, with_pip=True)
    site = next((env_dir / 'lib').glob('python3*/site-packages'))
    _link_preinstalled(tmp / 'preinstalled')
    stub = tmp / 'colab-stub' / 'google' / 'colab'
    stub.mkdir(parents=True)
    (stub / '__init__.py').write_text('"""Stand-in for Colab\'s module (tests only)."""\n')
    (site / 'colab.pth').write_text(f"{tmp / 'preinstalled'}\n{tmp / 'colab-stub'}\n"
                                    "import google.colab\n")
    return env_dir / 'bin' / 'python'


# a theory chapter, whose install cell and imports are those of every chapter (the book build
# has executed every chapter already, from the repository)
COLAB_CHAPTERS = ('01_linear_model',)


@pytest.mark.slow
def test_a_chapter_runs_in_colab(tmp_path):
    import nbformat
    from nbclient import NotebookClient
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True)
    if head.returncode: pytest.skip('not a git checkout')
    py = _colab_venv(tmp_path)
    spec = tmp_path / 'kernels' / 'kernels' / 'colab'
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps(dict(
        argv=[str(py), '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        display_name='colab stand-in', language='python')))
    url = re.search(r'git\+(https://[^"\\\s]+)', (ROOT / 'nbs' / '01_linear_model.ipynb')
                    .read_text()).group(1)  # the install cell's repository
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(JUPYTER_PATH=str(tmp_path / 'kernels'), GIT_CONFIG_COUNT='1',
               GIT_CONFIG_KEY_0=f'url.{ROOT}.insteadOf', GIT_CONFIG_VALUE_0=url,
               MPLBACKEND='agg', OMP_NUM_THREADS='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    failures, outside = [], tmp_path / 'content'
    outside.mkdir()
    try:
        for path in (ROOT / 'nbs' / f'{n}.ipynb' for n in COLAB_CHAPTERS):
            nb = nbformat.read(path, as_version=4)
            nb.cells = [c for c in nb.cells
                        if 'skip-execution' not in c.get('metadata', {}).get('tags', [])]
            client = NotebookClient(nb, kernel_name='colab', timeout=900,
                                    resources={'metadata': {'path': str(outside)}})
            try:
                client.execute()
            except Exception as e:  # the first error cell ends the chapter, as in "Run all"
                failures.append(f"{path.name}: {str(e).splitlines()[-1][:300]}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert not failures, '\n'.join(failures)


@pytest.mark.slow
def test_chapters_from_a_debian_layout_install(tmp_path):
    """Colab's Python is Debian's: sys.prefix is /usr and pip installs under /usr/local. The
    package is built as a wheel, installed with Debian's own python3 and pip into /usr/local under
    a scratch root, and chapters 12 and 93 and `byoltheory ledger` run from a folder outside the
    repository: the book's results and notebooks are found as package data, not under a prefix."""
    import nbformat, sysconfig
    from nbclient import NotebookClient
    system = Path('/usr/bin/python3')
    probe = subprocess.run([str(system), '-c', 'import sys, pip; print(sys.prefix)'],
                           capture_output=True, text=True) if system.exists() else None
    if not probe or probe.returncode or probe.stdout.strip() != '/usr':
        pytest.skip("no Debian-layout python3 with pip at /usr/bin/python3")
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
                    '-w', str(tmp_path / 'whl'), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / 'whl').glob('byoltheory-*.whl'))
    root = tmp_path / 'root'
    subprocess.run([str(system), '-m', 'pip', 'install', '-q', '--no-deps', '--root', str(root),
                    '--break-system-packages', str(wheel)],   # Debian's pip: into /usr/local
                   check=True, capture_output=True)
    site = next(root.glob('usr/local/lib/python3*/dist-packages'))
    # the dependencies (torch, ipykernel, …) from this venv, after the installed package
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'PYTHONPATH')}
    env.update(PYTHONPATH=f"{site}:{sysconfig.get_paths()['purelib']}", MPLBACKEND='agg',
               OMP_NUM_THREADS='1')
    outside = tmp_path / 'content'
    outside.mkdir()
    where = subprocess.run([str(system), '-c', 'import byoltheory.core as c, sys; '
                            'print(c.__file__, sys.prefix, c.results_dir(), c.nbs_dir())'],
                           capture_output=True, text=True, env=env, cwd=outside)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(site / 'byoltheory' / 'core.py'), '/usr',
                                    str(site / 'byoltheory/_book/results'),
                                    str(site / 'byoltheory/_book/nbs')], where.stdout
    ledger = subprocess.run([str(system), '-m', 'byoltheory.cli', 'ledger', '--json'],
                            capture_output=True, text=True, env=env, cwd=outside)
    assert ledger.returncode == 0 and json.loads(ledger.stdout)['checked'] > 0, ledger.stderr
    spec = tmp_path / 'kernels' / 'kernels' / 'debian'
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps(dict(
        argv=[str(system), '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        display_name='Debian python3', language='python', env=env)))
    saved = dict(os.environ)
    os.environ['JUPYTER_PATH'] = str(tmp_path / 'kernels')
    try:
        for name in ('12_table1_stopgrad', '93_paper_vs_book'):
            nb = nbformat.read(ROOT / 'nbs' / f'{name}.ipynb', as_version=4)
            nb.cells = [c for c in nb.cells
                        if 'skip-execution' not in c.get('metadata', {}).get('tags', [])]
            NotebookClient(nb, kernel_name='debian', timeout=600,
                           resources={'metadata': {'path': str(outside)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _tiny_cifar10(root: Path, n=16):
    "CIFAR-10's five training batches and its test batch, n random images each, as the real files are."
    import pickle
    import numpy as np
    d = root / 'cifar-10-batches-py'
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        batch = {b'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b'labels': list(rng.integers(0, 10, n))}
        (d / name).write_bytes(pickle.dumps(batch))


@pytest.mark.slow
def test_gpu_cells_run_on_cpu_into_drive(tmp_path, capsys):
    """Each experiment chapter's GPU cell (its grid and cells, read from the chapter) as a Colab reader runs it with
    Google Drive mounted (a stand-in folder): it prints its estimated cost, and -- on the CPU, one epoch of a small
    subset of a tiny CIFAR-10, one seed -- writes every run to Drive; run again, it trains nothing. Slow (a ResNet-18
    run a cell, about 50 s in all): `make book` runs it."""
    import ast, nbformat
    from byoltheory.reproduce import key_comparison
    _tiny_cifar10(tmp_path / 'data')
    drive = tmp_path / 'drive' / 'MyDrive'
    drive.mkdir(parents=True)
    small = dict(device='cpu', epochs=1, subset=32, batch_size=16, seeds=1, probe_epochs=1,
                 data_root=str(tmp_path / 'data'), drive=drive, log=lambda *_: None)
    gpu_cells = [c.source for p in sorted((ROOT / 'nbs').glob('*.ipynb'))
                 for c in nbformat.read(p, as_version=4).cells
                 if c.source.startswith('#| gpu') and 'key_comparison(' in c.source]
    assert len(gpu_cells) >= 4  # one a chapter 12-15, found in the chapters, not listed here
    for gpu in gpu_cells:
        call = next(n for n in ast.walk(ast.parse(gpu)) if isinstance(n, ast.Call)
                    and getattr(n.func, 'id', '') == 'key_comparison')
        grid, cells = ast.literal_eval(call.args[0]), ast.literal_eval(call.args[1])
        out = key_comparison(grid, cells, **small)
        assert out == drive / 'byoltheory' / 'results' / 'colab' / grid, out
        printed = capsys.readouterr().out
        assert f"{grid} at colab: {len(cells)} cells" in printed and 'T4-hours (estimate' in printed
        assert len(list(out.glob('*-seed0*.json'))) == 2 * len(cells)  # each run and its trace
        before = {p: p.stat().st_mtime for p in out.glob('*.json')}
        key_comparison(grid, cells, **small)  # after a disconnect: the same cell again
        assert {p: p.stat().st_mtime for p in out.glob('*.json')} == before
