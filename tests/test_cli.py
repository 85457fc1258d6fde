"""The command line under a real user's mistakes and faults: every one ends with a clear message naming the option
(argparse's usage error of the subcommand, exit 2) or saying what was kept -- never a traceback -- and nothing is
lost or mixed."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from byoltheory.cli import main
from byoltheory.reproduce import MAIN_SCALE
from byoltheory.runs import (SMOKE_OUT, checkpoint_path, curve_path, grid_folder, lock_path, log_path,
                             metrics_path, run_path, trace_path)

TINY = ['--subset', '64', '--batch-size', '32', '--probe-epochs', '2', '--quiet', '--threads', '1']

def run_main(args, capsys):
    "main(args) in-process: (exit code, stdout, stderr)."
    try: code = main(args)
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr()
    if isinstance(code, str): code, err = 1, err + code          # SystemExit(message): Python prints it, exit 1
    return code, out, err

@pytest.mark.parametrize('args, words', [
    (['--wd', 'nan'], '--wd: wd must be a finite number >= 0, got nan'),
    (['--momentum', '5'], '--momentum: momentum must be a finite number in [0, 1), got 5'),
    (['--lr', 'inf'], '--lr: lr must be a finite number > 0, got inf'),
    (['--alpha-p', 'inf'], '--alpha-p: alpha_p must be a finite number > 0, got inf'),
    (['--width', '0'], '--width: width must be an integer >= 1, got 0'),
    (['--seed', '-1'], '--seed: seed must be an integer >= 0, got -1'),
    (['--sync-bn'], 'sync_bn needs several processes: start the run with torchrun'),
    (['--rho', '1.5'], "--rho: an option of --predictor directpred or optimal, not of 'linear'"),
    (['--predictor', 'directpred', '--rho', '1.5'], '--rho: rho must be a finite number in [0, 1)'),
    (['--ema', '0.5', '--no-stop-grad'], 'no_stop_grad needs ema 0'),
    (['--predictor-opts', '[1]'], '--predictor-opts: must be a JSON object'),
    (['--aug-opts', '{"hue": 1}'], 'hue is not an augmentation option'),
])
def test_train_refuses_bad_options(args, words, capsys, tmp_path):
    code, _, err = run_main(['train', '--out', str(tmp_path / 'x'), '--epochs', '1', *TINY, *args], capsys)
    assert code == 2 and words in err and err.startswith('usage: byoltheory train'), err
    assert not (tmp_path / 'x').exists()                               # refused before any work

def test_train_help_shows_every_default(capsys):
    code, out, _ = run_main(['train', '--help'], capsys)
    out = ' '.join(out.split())  # argparse wraps to the terminal's width
    assert '(default: by dataset) (default' not in out
    assert code == 0 and '(default: 0.996)' in out and 'EMA rate gamma_a' in out and '(default: digits)' in out

def test_out_that_is_a_file_or_cannot_be_written(tmp_path, capsys):
    f = tmp_path / 'file'; f.write_text('x')
    code, _, err = run_main(['train', '--out', str(f), *TINY], capsys)
    assert code == 2 and 'is a file, not a folder' in err
    code, _, err = run_main(['train', '--out', str(f / 'run'), *TINY], capsys)
    assert code == 2 and 'cannot be written' in err

def test_second_run_into_the_same_out_is_refused_and_resume_past_epochs(tmp_path, capsys):
    out = tmp_path / 'run'
    code, text, _ = run_main(['train', '--out', str(out), '--epochs', '3', *TINY], capsys)
    assert code == 0 and f'results: {out}/metrics.json' in text and 'Next: byoltheory eval' in text
    before = metrics_path(out).read_text()
    code, _, err = run_main(['train', '--out', str(out), '--epochs', '3', *TINY], capsys)
    assert code == 2 and 'already holds a run' in err and '--overwrite' in err
    assert metrics_path(out).read_text() == before                 # nothing overwritten
    code, _, err = run_main(['train', '--out', str(out), '--epochs', '2', '--resume', *TINY], capsys)
    assert code == 2 and 'is at epoch 3, past --epochs 2' in err
    code, _, _ = run_main(['train', '--out', str(out), '--epochs', '3', '--overwrite', *TINY], capsys)
    assert code == 0

def test_truncated_checkpoint_and_duplicate_log_lines(tmp_path, capsys):
    out = tmp_path / 'run'
    run_main(['train', '--out', str(out), '--epochs', '2', *TINY], capsys)
    log = log_path(out)
    lines = log.read_text().splitlines()
    log.write_text('\n'.join(lines + [lines[-1].replace('"epoch": 2', '"epoch": 3')]) + '\n')  # killed after logging
    code, _, _ = run_main(['train', '--out', str(out), '--epochs', '4', '--resume', *TINY], capsys)
    assert code == 0 and [json.loads(l)['epoch'] for l in log.read_text().splitlines()] == [1, 2, 3, 4]
    ck = checkpoint_path(out); ck.write_bytes(ck.read_bytes()[:500])
    code, _, err = run_main(['train', '--out', str(out), '--epochs', '5', '--resume', *TINY], capsys)
    assert code == 2 and 'cannot be read' in err and 'truncated' in err

def test_eval_without_cuda_and_missing_checkpoint(tmp_path, capsys):
    code, _, err = run_main(['eval', '--checkpoint', str(tmp_path / 'none.pt')], capsys)
    assert code == 2 and 'is not a file' in err
    if not torch.cuda.is_available():
        ck = tmp_path / 'c.pt'; ck.write_bytes(b'')
        code, _, err = run_main(['eval', '--checkpoint', str(ck), '--device', 'cuda'], capsys)
        assert code == 2 and 'no CUDA device' in err and err.startswith('usage: byoltheory eval')

def test_reproduce_refuses_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(['reproduce', 'table6', '--epochs', '0'], capsys)
    assert code == 2 and '--epochs: epochs must be an integer >= 1, got 0' in err and not list(tmp_path.iterdir())
    code, _, err = run_main(['reproduce', 'table99'], capsys)
    assert code == 2 and 'must be one of fig2, fig6, table1' in err
    code, _, err = run_main(['reproduce', 'table3-regime', '--scale', 'fashion-mnist-10k'], capsys)
    assert code == 2 and 'runs at digits-small' in err
    code, _, err = run_main(['reproduce', 'table3-regime', '--scale', 'fashion-mnist'], capsys)
    assert code == 2 and "not 'fashion-mnist-10k'" in err       # an old name reads as the scale now
    code, _, err = run_main(['reproduce', 'table6', '--scale', 'mnist'], capsys)
    assert code == 2 and "--scale: invalid choice: 'mnist' (choose from 'digits-small'" in err
    code, _, err = run_main(['reproduce', 'table6', '--precision', 'fp16'], capsys)
    assert code == 2 and "precision 'fp16' needs --device cuda" in err and not list(tmp_path.iterdir())
    code, _, err = run_main(['reproduce', 'table6', '--keep', 'kept.json'], capsys)
    assert code == 2 and 'argument --keep: only with --verify N' in err and not list(tmp_path.iterdir())
    if not torch.cuda.is_available():
        code, _, err = run_main(['reproduce', 'table6', '--scale', 'full'], capsys)
        assert code == 2 and 'no CUDA device' in err and '--device cpu' in err

def test_smoke_run_goes_to_runs_smoke_and_never_mixes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ['reproduce', 'table6', '--cell', 'SGD-trained linear W_p (baseline)', '--seeds', '1', '--epochs', '1',
            '--probe-epochs', '1']
    code, out, _ = run_main(args, capsys)
    assert code == 0 and 'runs/smoke/digits-small/table6' in out and not (tmp_path / 'results').exists()
    assert "(changed settings: a smoke run, not the scale's grid)" in out
    from byoltheory.reproduce import get_grid
    t6 = get_grid('table6')
    f = run_path(tmp_path / SMOKE_OUT, 'digits-small', t6, t6.cell('SGD-trained linear W_p (baseline)'), 0)
    f.write_text(f.read_text()[:50])                                     # a truncated run file
    code, _, err = run_main(args, capsys)
    assert code != 0 and 'cannot be read' in err and 'sgd-trained-linear-w-p-baseline-seed0.json' in err
    f.unlink()
    run_main(args, capsys)
    trace = trace_path(f)                                                  # a truncated trace file:
    trace.write_text(trace.read_text()[:40])                               # the same clear message
    from byoltheory.reproduce import load_traces
    with pytest.raises(ValueError, match=r'seed0\.trace\.json cannot be read .*run the grid again'):
        load_traces('table6', 'digits-small', 'SGD-trained linear W_p (baseline)', out='runs/smoke')
    code, _, err = run_main(args[:-2] + ['--probe-epochs', '2'], capsys)     # other settings, same folder
    assert code != 0 and 'holds a run with other settings' in err

def test_threads_alone_is_the_grid_not_a_smoke_run(tmp_path, capsys, monkeypatch):
    "--threads changes where a run runs, not what it computes: the scale's grid, in results/."
    import byoltheory.reproduce as R, byoltheory.report as rep
    monkeypatch.chdir(tmp_path)
    seen = {}
    def run_grid(name, **kw):
        seen.update(kw)
        return grid_folder(kw['out'], 'digits-small', name)
    monkeypatch.setattr(R, 'run_grid', run_grid)
    monkeypatch.setattr(rep, 'grid_table', lambda *a, **kw: 'THE GRID TABLE')
    _, out, _ = run_main(['reproduce', 'table6', '--threads', '1'], capsys)
    assert seen['out'] == 'results' and seen['threads'] == 1
    assert 'THE GRID TABLE' in out and 'results in results/digits-small/table6' in out
    assert 'smoke run' not in out

def _start(out, inherited=signal.SIG_DFL, epochs='1000000'):
    """A training run in a child process whose SIGINT disposition is `inherited`, whatever this
    shell's: a job started with `&` by a script inherits SIGINT ignored, and so would the child."""
    cmd = [sys.executable, '-m', 'byoltheory.cli', 'train', '--out', str(out), '--epochs', epochs,
           *TINY]
    # PYTHONFAULTHANDLER: if the run ever hangs after the signal, SIGABRT makes it print where
    # every thread is, and the failure shows that
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONFAULTHANDLER='1'),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, inherited))


def _wait_for_checkpoint(out, proc, timeout=120):
    deadline = time.time() + timeout
    while not checkpoint_path(out).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert checkpoint_path(out).exists(), proc.communicate()[1]


@pytest.mark.parametrize('sig, inherited', [
    (signal.SIGINT, signal.SIG_DFL),     # Ctrl-C in a terminal
    (signal.SIGINT, signal.SIG_IGN),     # the same, in a job that a script started with `&`
    (signal.SIGTERM, signal.SIG_DFL)])   # kill, a scheduler's time limit
def test_a_signal_says_what_is_kept(tmp_path, sig, inherited):
    out = tmp_path / 'run'
    # far more epochs than can finish before the signal: on an idle machine a 400-epoch tiny run
    # finished before Ctrl-C arrived
    proc = _start(out, inherited)
    try:
        _wait_for_checkpoint(out, proc)
        time.sleep(0.3)
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"no exit 60 s after the signal; the run's stacks:\n{err}")
    finally:
        proc.kill()
    said = 'Ctrl-C (SIGINT)' if sig == signal.SIGINT else 'SIGTERM'
    assert proc.returncode == 128 + sig and f'interrupted by {said}' in err, err
    assert 'checkpoint' in err and '--resume' in err and 'Traceback' not in err, err
    assert torch.load(checkpoint_path(out), weights_only=False)['epoch'] >= 1
    assert not lock_path(out).exists()                      # the lock went with the run


def test_one_writer_per_run_folder(tmp_path, capsys):
    out = tmp_path / 'run'
    proc = _start(out)
    try:
        _wait_for_checkpoint(out, proc)
        t0 = time.time()
        code, _, err = run_main(['train', '--out', str(out), '--epochs', '3', *TINY], capsys)
        took = time.time() - t0
        assert code == 2 and 'is in use by another run (pid ' in err, err
        assert str(proc.pid) in err                           # names the holder
        code, _, err = run_main(['train', '--out', str(out), '--resume', *TINY], capsys)
        assert code == 2 and 'is in use by another run' in err, err
        assert proc.poll() is None                            # the first run trains on
        print(f"refused in {took:.2f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    ck = torch.load(checkpoint_path(out), weights_only=False)   # its files are intact
    lines = log_path(out).read_text().splitlines()
    assert [json.loads(l)['epoch'] for l in lines] == list(range(1, len(lines) + 1))
    assert ck['epoch'] in (len(lines), len(lines) - 1)
    # a killed run's lock does not block --resume: the kernel dropped it with the process
    code, _, err = run_main(['train', '--out', str(out), '--epochs', str(ck['epoch'] + 1),
                             '--resume', *TINY], capsys)
    assert code == 0, err


def test_resume_needs_something_to_resume(tmp_path, capsys):
    code, _, err = run_main(['train', '--out', str(tmp_path / 'misspelt'), '--resume', *TINY],
                            capsys)
    assert code == 2 and 'holds no checkpoint to resume' in err, err
    assert not log_path(tmp_path / 'misspelt').exists()


def test_data_root_must_exist_and_the_folder_read_is_recorded(tmp_path, capsys):
    from byoltheory.data import FASHION_MNIST_SYSTEM
    # a narrow network (--width 4): what is checked is the folder read, not what is learnt
    args = ['train', '--dataset', 'fashion-mnist', '--epochs', '1', '--width', '4', *TINY]
    code, _, err = run_main([*args, '--out', str(tmp_path / 'a'), '--data-root', '/nonexistent'],
                            capsys)
    assert code != 0 and 'data_root /nonexistent does not exist' in err, err
    if not FASHION_MNIST_SYSTEM.is_dir(): pytest.skip("Debian's Fashion-MNIST is not installed")
    code, _, err = run_main([*args, '--out', str(tmp_path / 'b'), '--data-root', str(tmp_path)],
                            capsys)
    m = json.loads(metrics_path(tmp_path / 'b').read_text())
    assert code == 0 and m['data_read'] == str(FASHION_MNIST_SYSTEM), err


def test_no_progress_flood_in_a_log_file(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'byoltheory.cli', 'train', '--out', str(tmp_path / 'r'), '--epochs',
                        '20', *[a for a in TINY if a != '--quiet']], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0
    # a line per tenth, then the result; not a line an epoch (20)
    assert len((r.stdout + r.stderr).splitlines()) <= 14, r.stdout + r.stderr

@pytest.mark.parametrize('args, words', [
    (['simclr'], 'argument name: must be one of linear, directpred'),
    (['linear', '--epochs', '0'], '--epochs: epochs must be an integer >= 1, got 0'),
    (['linear', '--every', '0'], 'must be >= 1')])
def test_curve_refuses_bad_arguments(args, words, capsys, tmp_path):
    code, _, err = run_main(['curve', *args, '--out', str(tmp_path)], capsys)
    assert code == 2 and words in err and err.startswith('usage: byoltheory curve'), err
    assert not any(tmp_path.iterdir())

def test_curve_refuses_to_mix_two_runs(capsys, tmp_path):
    "A committed-looking curve file of another config is not extended: the message says why."
    path = curve_path(tmp_path, MAIN_SCALE, 'linear')
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dict(config=dict(lr=9.0), points=[dict(epoch=5)])))
    code, _, err = run_main(['curve', 'linear', '--out', str(tmp_path), '--epochs', '10'], capsys)
    assert code == 1 and 'byoltheory curve:' in err and 'another config' in err, err
    assert json.loads(path.read_text())['config'] == dict(lr=9.0)    # untouched

def test_verify_fails_when_a_run_of_this_kind_of_cpu_does_not_repeat(capsys, monkeypatch):
    "--verify: an error (exit 1, naming the run) when a run made on this kind of CPU differs."
    import byoltheory.reproduce as rp
    seen = {}
    def fake(name, scale, n=1, *, out='results', log=print, keep=None, strict=False):
        seen.update(strict=strict)
        if strict: raise ValueError(f"{name} at {scale}: not bit for bit on the kind of CPU that "
                                    "made it: DirectPred seed 0 (0.5)")
        return 0.5
    monkeypatch.setattr(rp, 'verify', fake)
    code, _, err = run_main(['reproduce', 'table6', '--scale', 'digits-small', '--verify', '1'], capsys)
    assert seen == {'strict': True} and code == 1
    assert 'byoltheory reproduce: table6 at digits-small: not bit for bit' in err and 'Traceback' not in err


def test_precision_changes_every_run_so_it_is_a_smoke_run():
    "--precision (for a CPU without native bfloat16, say) makes other runs: never into results/."
    from byoltheory.cli import build_parser, _reproduce_plan
    args = build_parser({'reproduce'}).parse_args(['reproduce', 'table6', '--precision', 'bf16'])
    _, out, over, _ = _reproduce_plan(args, args.sub)
    assert over == {'precision': 'bf16'} and out == str(SMOKE_OUT)


def test_a_predictor_option_named_like_a_flag_is_refused_and_every_command_still_works(capsys):
    "Issue 48: an option `lr` would give `train` a second --lr; argparse would then refuse every command."
    from torch import nn
    from byoltheory.cli import COMMANDS, build_parser
    from byoltheory.core import Predictor
    from byoltheory.models import PREDICTORS, register_predictor
    class WithLr(nn.Module, Predictor):
        def __init__(self, dim, *, lr=0.1, resume=False): super().__init__()
    with pytest.raises(ValueError) as e:
        register_predictor('with-lr', WithLr)
    assert "option 'lr' would give `byoltheory train` a second --lr (the config field 'lr' has it)" in str(e.value)
    assert "option 'resume' would give `byoltheory train` a second --resume (train itself has it)" in str(e.value)
    assert 'with-lr' not in PREDICTORS
    build_parser()                                                       # every subcommand builds
    for name in COMMANDS:
        code, out, _ = run_main([name, '--help'], capsys)
        assert code == 0 and f'usage: byoltheory {name}' in out, name


def test_field_options_come_from_the_declarations(capsys):
    "Every option that sets a config field is made from its declaration: the same help, range and check everywhere."
    from byoltheory.config import fields_for, field_range
    helps = {}
    for name in ('train', 'eval', 'reproduce', 'curve'):
        _, out, _ = run_main([name, '--help'], capsys)
        helps[name] = ' '.join(out.split())
    for cmd in ('eval', 'reproduce', 'curve'):
        for f in fields_for(cmd):
            flag = '--' + f.replace('_', '-')
            assert flag in helps[cmd], (cmd, flag)
            if field_range(f): assert field_range(f) in helps[cmd], (cmd, f)
    for cmd, args in [('eval', ['--checkpoint', 'x']), ('reproduce', ['table6']), ('curve', ['linear'])]:
        code, _, err = run_main([cmd, *args, '--probe-epochs' if cmd != 'curve' else '--epochs', '0'], capsys)
        assert code == 2 and 'must be an integer >= 1, got 0' in err, (cmd, err)
