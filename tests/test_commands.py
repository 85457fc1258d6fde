"""Every subcommand that `byoltheory --help` lists, run as a user runs it (a new process, the console
entry point), in the clone and from a folder outside it: `--help`, then a minimal real invocation
that must finish with exit 0 and print its result. `--help` of the whole command imports no torch."""
import json, os, re, subprocess, sys, time
from pathlib import Path
import pytest
from byoltheory.cli import COMMANDS
from byoltheory.runs import curve_path, metrics_path
from byoltheory.reproduce import MAIN_SCALE

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1')
TINY = ['--subset', '64', '--batch-size', '32', '--probe-epochs', '2', '--quiet', '--threads', '1']


def cli(*args, cwd, timeout=300):
    r = subprocess.run([sys.executable, '-m', 'byoltheory.cli', *args], cwd=cwd, env=ENV,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(params=['clone', 'outside'])
def place(request, tmp_path):
    "Where the command runs: the repository, or an empty folder outside it."
    return ROOT if request.param == 'clone' else tmp_path


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp('run') / 'run'
    cli('train', '--out', str(out), '--epochs', '1', *TINY, cwd=out.parent)
    return out / 'checkpoint.pt'


def test_help_lists_every_command_without_torch(tmp_path):
    out = cli('--help', cwd=tmp_path)
    listed = re.findall(r'(?m)^    (\S+)', out)
    assert listed == list(COMMANDS), listed
    code = ('import sys; from byoltheory.cli import main\ntry: main(["--help"])\n'
            'except SystemExit: print("torch" in sys.modules)')
    r = subprocess.run([sys.executable, '-c', code],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip().endswith('False'), r.stdout + r.stderr


HELP_OF_EACH = """import contextlib, io, json
from byoltheory.cli import COMMANDS, main
said = {}
for c in COMMANDS:
    with contextlib.redirect_stdout(io.StringIO()) as f:
        try: main([c, '--help'])
        except SystemExit as e: assert e.code in (0, None), (c, e.code)
    said[c] = f.getvalue()
print(json.dumps(said))"""


def test_command_help(place):
    "`COMMAND --help` of every subcommand, in one new process per place (not one each: ~4 s apiece)."
    r = subprocess.run([sys.executable, '-c', HELP_OF_EACH], cwd=place, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stdout + r.stderr
    said = json.loads(r.stdout.splitlines()[-1])
    assert list(said) == list(COMMANDS)
    for command, out in said.items():
        out = ' '.join(out.split())
        assert out.startswith(f'usage: byoltheory {command}') and COMMANDS[command][1] in out, out


def test_train(place, tmp_path):
    out = cli('train', '--out', str(tmp_path / 'r'), '--epochs', '1', *TINY, cwd=place)
    assert 'linear top-1' in out and metrics_path(tmp_path / 'r').exists()


def test_eval(place, checkpoint, tmp_path):
    out = cli('eval', '--checkpoint', str(checkpoint), '--probe-epochs', '1',
              '--out', str(tmp_path / 'e.json'), cwd=place)
    assert 'kNN top-1' in out and 'knn_top1' in json.loads((tmp_path / 'e.json').read_text())


def test_reproduce(place, tmp_path):
    cell = 'SGD-trained linear W_p (baseline)'
    out = cli('reproduce', 'table6', '--cell', cell, '--seeds', '1', '--epochs', '1',
              '--probe-epochs', '1', '--out', str(tmp_path / 'res'), cwd=place)
    assert 'results in' in out
    assert (tmp_path / 'res/digits-small/table6/sgd-trained-linear-w-p-baseline-seed0.json').exists()


@pytest.mark.slow
def test_curve(tmp_path):
    """A one-epoch curve of the Fashion-MNIST recipe (the scale's real data: Debian's copy), from
    outside the clone only: about a minute (so `make book` runs it), and its code path in the
    clone is train's and reproduce's. On a CPU without native bfloat16 the recipe's bf16 is
    emulated, many times slower (chapter 9), so there the curve runs in float32 (`--precision fp32`)."""
    from byoltheory.byol import cpu_kind
    from byoltheory.data import FASHION_MNIST_SYSTEM
    if not FASHION_MNIST_SYSTEM.is_dir(): pytest.skip("Debian's Fashion-MNIST is not installed")
    fast = [] if cpu_kind()['native_bf16'] else ['--precision', 'fp32']
    out = cli('curve', 'linear', '--epochs', '1', '--every', '1', '--out', str(tmp_path), *fast,
              cwd=tmp_path, timeout=600)
    assert '1 points in' in out
    assert json.loads(curve_path(tmp_path, MAIN_SCALE, 'linear').read_text())['points']


def test_fixed_points(place):
    assert 'p*+ = 0.989898 (stable)' in cli('fixed-points', '--eta', '0.01', cwd=place)


def test_ledger(place):
    counts = json.loads(cli('ledger', '--json', cwd=place))
    assert sum(counts.values()) > 100 and counts['checked'] > 0, counts
