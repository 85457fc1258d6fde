"""byoltheory.diagnostics.Monitor inside the BYOL code users already have: byol-pytorch's own `BYOL`
(with nn.Linear, DirectPredictor and its default MLP predictor), a loop shaped like lightly's
examples (one call per view), solo-learn-style multi-crop (8 calls a step) and gradient
accumulation (4 micro-batches per optimiser step). In each, every measured value must equal an
independent computation from the tensors the predictor saw, recorded by the test's own hooks: F̂
by the Eq 19 recursion in numpy, the output measures and W_p's measures from numpy, the MLP's
Jacobian row by row on a copy. Training with the monitor must equal training without it bit for
bit (also under autocast), and the collapse hint must fire without the stop-gradient and stay
silent with it."""
import copy, json, os, random, re, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from torch import nn
from byoltheory.diagnostics import (Monitor, RunHint, CollapseHint, CollapseBasinHint,
                                    load_history)
from byoltheory.directpred import DirectPredictor
from byoltheory.report import COLLAPSE_STD
from test_clients import small_net, _two_view_loss, _momentum, multi_crop_loss

ROOT = Path(__file__).resolve().parents[1]
RHO, EVERY, ROWS = 0.9, 2, 64


def _jacobian(predictor, rows):
    "Mean over rows of d predictor(x)/dx, row by row, on a copy in eval mode."
    net = copy.deepcopy(predictor).eval()
    x = torch.as_tensor(rows[:ROWS], dtype=torch.float32)
    return torch.stack([torch.autograd.functional.jacobian(lambda v: net(v[None])[0], r)
                        for r in x]).mean(0).double().numpy()


class Witness:
    """The test's own view of a watched predictor: the rows of every training call (a forward
    pre-hook) and W_p after every optimiser step (a step hook registered after the monitor's)."""
    def __init__(self, predictor, opt, source):
        self.p, self.source, self.rows, self.steps = predictor, source, [], []
        predictor.register_forward_pre_hook(lambda m, a: self.see(m, a[0]))
        opt.register_step_post_hook(lambda o, a, kw: self.after())

    def see(self, m, f):
        if m.training and torch.is_grad_enabled():
            self.rows.append(f.detach().reshape(-1, f.shape[-1]).double().numpy().copy())

    def after(self):
        rows, self.rows = np.concatenate(self.rows), []
        if self.source == 'jacobian': W = _jacobian(self.p, rows)
        elif self.source == 'weight':
            w = self.p.weight if isinstance(self.p, nn.Linear) else self.p.matrix()
            W = w.detach().double().numpy().copy()
        else: W = None
        self.steps.append((rows, W))


def reference(rows, W, F):
    "Every measure, written out in numpy from the rows, W_p and F̂."
    d = rows.shape[1]
    z = rows.astype(np.float32).astype(float)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    ev = np.clip(np.linalg.eigvalsh(np.cov(rows.T)), 0, None)
    pr = ev[ev > 0] / ev.sum()
    out = dict(output_std=z.std(0, ddof=1).mean() * np.sqrt(d),
               output_erank=np.exp(-(pr * np.log(pr)).sum()))
    if W is None: return out
    s, U = np.linalg.eigh(F)
    s, U = s[::-1], U[:, ::-1]
    WU = W @ U
    cos = np.einsum('ij,ij->j', U, WU) / np.linalg.norm(WU, axis=0)
    A, B = (W + W.T) / 2, (W - W.T) / 2
    p = np.linalg.eigvalsh(A)[::-1]
    q = np.sqrt(np.clip(s, 0, None))
    c = max(p @ q, 0) / (q @ q)
    return dict(out, alignment=cos[:8].mean(), asymmetry=np.linalg.norm(B) / np.linalg.norm(A),
                negative_eigs=int((p < 0).sum()), min_eig=p[-1],
                eq18_gap=np.linalg.norm(p - c * q) / np.linalg.norm(p))


def check(mon, wit, n_steps, rows_per_step, tol=1e-6):
    "The monitor's history against the witness, measurement by measurement."
    assert len(wit.steps) == n_steps
    assert [len(r) for r, _ in wit.steps] == [rows_per_step] * n_steps
    assert [h['step'] for h in mon.history] == list(range(EVERY, n_steps + 1, EVERY))
    F, hist = None, iter(mon.history)
    for t, (rows, W) in enumerate(wit.steps, 1):
        S = rows.T @ rows / len(rows)
        F = S if F is None else RHO * F + (1 - RHO) * S
        if t % EVERY: continue
        got, ref = next(hist), reference(rows, W, F)
        assert set(got) - {'step', 'Wp_jacobian_rows'} == set(ref), t
        for k, v in ref.items():
            assert abs(got[k] - v) <= tol * max(1.0, abs(v)), (t, k, got[k], v)
        if wit.source == 'jacobian': assert got['Wp_jacobian_rows'] == min(ROWS, rows_per_step)
    np.testing.assert_allclose(mon.F.cpu().numpy(), F, rtol=1e-9, atol=1e-12)


def _watch(predictor, opt, **kw):
    mon = Monitor(predictor, every=EVERY, rho=RHO, jacobian_rows=ROWS, **kw).attach(opt)
    return mon, Witness(predictor, opt, mon.source)


def _learner(predictor=None, seed=0, cls=None):
    "byol-pytorch's BYOL on small_net (d = 16); `predictor()` in place of its MLP (None: keep it)."
    from byol_pytorch import BYOL
    torch.manual_seed(seed)
    random.seed(seed)  # its default augmentation draws from Python's random
    net = nn.Sequential(small_net(32), nn.ReLU(), nn.Linear(32, 10))
    learner = (cls or BYOL)(net, image_size=16, hidden_layer=-2, projection_size=16,
                            projection_hidden_size=32, use_simplicial_embeddings=False)
    if predictor is not None: learner.online_predictor = predictor()
    opt = torch.optim.SGD(learner.parameters(), lr=0.05, momentum=0.9, weight_decay=4e-4)
    if isinstance(learner.online_predictor, DirectPredictor): learner.online_predictor.attach(opt)
    return learner, opt


PREDICTORS = {'linear': lambda: nn.Linear(16, 16, bias=False), 'linear+bias': lambda: nn.Linear(16, 16),
              'directpred': lambda: DirectPredictor(16), 'mlp': None}


@pytest.mark.parametrize('name', list(PREDICTORS))
def test_byol_pytorch(name):
    "byol-pytorch calls the predictor once a step, on both views concatenated."
    learner, opt = _learner(PREDICTORS[name])
    mon, wit = _watch(learner.online_predictor, opt)
    assert mon.source == ('jacobian' if name == 'mlp' else 'weight')
    for step in range(10):
        loss = learner(torch.rand(8, 3, 16, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.update_moving_average()
        with torch.no_grad(): learner(torch.rand(4, 3, 16, 16))  # a probe: not seen
    check(mon, wit, 10, 16, tol=1e-4 if name == 'mlp' else 1e-6)


def _client(seed, *head, **sgd):
    "A client's own BYOL pieces (small_net → head → 16), its EMA target, a linear W_p, watched."
    torch.manual_seed(seed)
    online = nn.Sequential(small_net(32), *head, nn.ReLU(), nn.Linear(32, 16))
    target = copy.deepcopy(online).requires_grad_(False)
    pred = nn.Linear(16, 16)
    opt = torch.optim.SGD(list(online.parameters()) + list(pred.parameters()), **sgd)
    return online, target, pred, opt, *_watch(pred, opt)


def test_lightly_shaped_loop():
    "lightly's BYOL example: backbone → projection head, the predictor called once per view."
    online, target, pred, opt, mon, wit = _client(1, nn.BatchNorm1d(32), lr=0.06)
    for step in range(10):
        x = torch.rand(12, 3, 16, 16)
        loss = 0.5 * _two_view_loss(online, target, pred, x + 0.1 * torch.randn_like(x), x.flip(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        _momentum(target, online)
        pred.eval()(torch.randn(5, 16)); pred.train()  # an eval-mode call: not seen
    check(mon, wit, 10, 24)


def test_multi_crop():
    "solo-learn's multi-crop: 2 large and 6 small crops, the predictor called on each (8 a step)."
    online, target, pred, opt, mon, wit = _client(2, lr=0.05)
    for step in range(10):
        loss = multi_crop_loss(online, target, pred, torch.rand(6, 3, 24, 24))
        opt.zero_grad()
        loss.backward()
        opt.step()
        _momentum(target, online)
    check(mon, wit, 10, 48)


def test_gradient_accumulation():
    "4 micro-batches of two views per optimiser step: 8 calls, one step."
    online, target, pred, opt, mon, wit = _client(3, lr=0.05, momentum=0.9)
    for step in range(10):
        for micro in range(4):
            x = torch.rand(5, 3, 16, 16)
            (_two_view_loss(online, target, pred, x, x.flip(-1)) / 4).backward()
        opt.step()
        opt.zero_grad()
        _momentum(target, online)
    check(mon, wit, 10, 40)


def test_no_predictor_records_the_output_only():
    "No predictor: the monitor hooks the projector's output (features=); nn.Identity likewise."
    for identity in (False, True):
        learner, opt = _learner(nn.Identity if identity else None)
        proj = learner.online_encoder.projector
        mon = Monitor(learner.online_predictor if identity else None, every=EVERY, rho=RHO,
                      features=None if identity else proj).attach(opt)
        seen = []
        proj.register_forward_hook(
            lambda m, a, out: seen.append(out.detach().double().numpy().copy())
            if m.training and torch.is_grad_enabled() else None)
        for step in range(4):
            loss = learner(torch.rand(8, 3, 16, 16))
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert mon.source is None and [h['step'] for h in mon.history] == [2, 4]
        for h, rows in zip(mon.history, seen[1::2]):
            assert set(h) == {'step', 'output_std', 'output_erank'}
            for k, v in reference(rows, None, None).items():
                assert abs(h[k] - v) < 1e-6 * max(1, v), (k, h[k], v)


def _train(watch, predictor, *, steps=6, autocast=False, **kw):
    "byol-pytorch for `steps` steps; (losses, state, random states, monitor)."
    learner, opt = _learner(predictor)
    np.random.seed(0)
    mon = Monitor(learner.online_predictor, every=1, warn=True, **kw).attach(opt) if watch else None
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RunHint)
        for _ in range(steps):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
                loss = learner(torch.rand(8, 3, 16, 16))
            opt.zero_grad()
            loss.backward()
            opt.step()
            learner.update_moving_average()
            losses.append(loss.detach())
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    return losses, learner.state_dict(), rng, mon


def _same(a, b) -> bool:
    "Equal to the bit, dtypes included, through the dicts and lists of a state_dict's extra state."
    if torch.is_tensor(a): return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict): return isinstance(b, dict) and a.keys() == b.keys() and all(
        _same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(map(_same, a, b))
    return a == b


@pytest.mark.parametrize('autocast', [False, True])
@pytest.mark.parametrize('name', ['linear', 'directpred', 'mlp'])
def test_training_is_unchanged_bit_for_bit(name, autocast):
    (l1, s1, r1, mon), (l2, s2, r2, _) = (_train(w, PREDICTORS[name], autocast=autocast)
                                          for w in (True, False))
    assert len(mon.history) == 6 and all(np.isfinite(v) for h in mon.history for v in h.values())
    assert all(torch.equal(a, b) for a, b in zip(l1, l2))
    assert list(s1) == list(s2) and all(_same(s1[k], s2[k]) for k in s1)  # DirectPred's state too
    assert torch.equal(r1[0], r2[0]) and r1[1] == r2[1] and np.array_equal(r1[2], r2[2])


def test_history_is_scalars_and_the_state_is_d_by_d():
    learner, opt = _learner(PREDICTORS['mlp'])
    mon = Monitor(learner.online_predictor, every=3, log=(logged := []).append).attach(opt)
    for _ in range(9):
        loss = learner(torch.rand(8, 3, 16, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logged == mon.history and len(mon.history) == 3
    assert all(type(v) in (int, float) for h in mon.history for v in h.values())
    tensors = [v for v in vars(mon).values() if torch.is_tensor(v)]
    assert sorted(t.shape for t in tensors) == [(16, 16), (16, 16)] and mon._rows == []


class WithoutStopGradient:
    "byol-pytorch's BYOL with the target branch the online network, gradient flowing (Theorem 2)."
    def forward(self, x):
        from byol_pytorch.byol_pytorch import cosine_loss_fn
        z, _ = self.online_encoder(torch.cat((self.augment1(x), self.augment2(x))))
        p1, p2 = self.online_predictor(z).chunk(2)
        z1, z2 = z.chunk(2)
        return (cosine_loss_fn(p1, z2) + cosine_loss_fn(p2, z1)).mean()


@pytest.mark.parametrize('stop_gradient', [True, False])
def test_collapse_hint_fires_without_the_stop_gradient_only(stop_gradient):
    """byol-pytorch on scikit-learn's digits (always at hand; chapter 7's small ConvNet, d = 16),
    60 steps, a linear W_p: the hint once without the stop-gradient, never with it."""
    from byol_pytorch import BYOL
    from byoltheory.data import load_dataset, BatchAugment, mean_std
    from byoltheory.models import make_backbone
    data = load_dataset('digits')
    m, s = (t.view(1, -1, 1, 1) for t in mean_std(data))
    view = BatchAugment('digits')
    cls = BYOL if stop_gradient else type('NoStopGrad', (WithoutStopGradient, BYOL), {})
    torch.manual_seed(0)
    learner = cls(make_backbone('small', width=8, in_channels=1), image_size=8, hidden_layer=-1,
                  projection_size=16, projection_hidden_size=64,
                  augment_fn=lambda x: (view(x[:, :1]) - m) / s, use_simplicial_embeddings=False)
    learner.online_predictor = nn.Linear(16, 16, bias=False)
    opt = torch.optim.SGD(learner.parameters(), lr=0.05, momentum=0.9, weight_decay=4e-4)
    mon = Monitor(learner.online_predictor, every=5, warn=True).attach(opt)
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(60):
            loss = learner(data.images[torch.randint(len(data.images), (32, ), generator=g)])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if stop_gradient: learner.update_moving_average()
    hints = [w for w in caught if issubclass(w.category, CollapseHint)]
    stds = [h['output_std'] for h in mon.history]
    if stop_gradient:
        assert not hints and min(stds) > COLLAPSE_STD, stds
    else:
        assert len(hints) == 1 and max(stds[-3:]) < COLLAPSE_STD / 2, stds  # once, though it stays
        text = str(hints[0].message)
        assert 'hint, not a verdict' in text and 'stop-gradient' in text
        assert '12_table1_stopgrad.html' in text and text.count('https://') >= 3


def test_basin_hint_fires_once_late():
    "W_p = −I all run long: every mode in the collapse basin; the hint waits for `late`."
    pred = nn.Linear(16, 16, bias=False)
    with torch.no_grad(): pred.weight.copy_(-torch.eye(16))
    mon = Monitor(pred, every=1, late=5, warn=True).attach()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for step in range(1, 12):
            pred(torch.randn(32, 16))
            mon.step()
            basin = [w for w in caught if issubclass(w.category, CollapseBasinHint)]
            assert len(basin) == (step >= 7), step  # steps 5, 6, 7: three in a row from `late`
    assert '16 of' in str(basin[0].message) and 'Eq 16' in str(basin[0].message)


def test_save_load_and_the_diagnose_command(tmp_path, capsys):
    learner, opt = _learner(PREDICTORS['linear'])
    mon = Monitor(learner.online_predictor, every=1).attach(opt)
    for _ in range(3):
        loss = learner(torch.rand(8, 3, 16, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
    mon.save(tmp_path / 'run.jsonl')
    assert load_history(tmp_path / 'run.jsonl') == mon.history
    env = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='agg')
    r = subprocess.run([sys.executable, '-m', 'byoltheory.cli', 'diagnose', 'run.jsonl'],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'figure: run.png' in r.stdout, r.stdout + r.stderr  # as users do
    assert (tmp_path / 'run.png').stat().st_size > 10_000
    from byoltheory.cli import main
    main(['diagnose', str(tmp_path / 'run.jsonl'), str(tmp_path / 'run.jsonl'), '--out',
          str(tmp_path / 'two.png'), '--title', 'twice'])  # two logs of one name: their paths
    assert (tmp_path / 'two.png').stat().st_size > 10_000
    (tmp_path / 'bad.jsonl').write_text('not json\n')
    for args, words in [([str(tmp_path / 'bad.jsonl')], 'line 1: not JSON'),
                        ([str(tmp_path / 'none.jsonl')], 'cannot be read'),
                        ([str(tmp_path / 'run.jsonl'), '--out', str(tmp_path / 'no/x.png')],
                         'argument --out')]:
        with pytest.raises(SystemExit) as e:
            main(['diagnose', *args])
        assert e.value.code == 2
        assert words in capsys.readouterr().err


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    """README's five lines in a byol-pytorch loop: its `...` (train as usual) stands for 100
    steps."""
    import matplotlib
    matplotlib.use('agg')
    text = (ROOT / 'README.md').read_text()
    blocks = [b for b in re.findall(r'```python\n(.*?)```', text, re.S)
              if 'from byoltheory.diagnostics import Monitor' in b]
    assert len(blocks) == 1 and blocks[0].count('\n') == 5
    learner, opt = _learner(PREDICTORS['linear'])

    def train():
        for _ in range(100):
            loss = learner(torch.rand(8, 3, 16, 16))
            opt.zero_grad()
            loss.backward()
            opt.step()
            learner.update_moving_average()
    monkeypatch.chdir(tmp_path)
    scope = dict(learner=learner, opt=opt, train=train)
    code = re.sub(r'(?m)^\.\.\.', 'train()', blocks[0])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RunHint)
        exec(compile(code, 'README.md', 'exec'), scope)
    mon = scope['mon']
    assert [h['step'] for h in mon.history] == [50, 100]
    assert load_history(tmp_path / 'run.jsonl') == mon.history


def test_a_copy_of_the_watched_module_is_not_watched_and_pickles():
    "deepcopy / torch.save(model) of a watched predictor: the copy's hook does nothing."
    import io, pickle
    pred = nn.Linear(16, 16)
    mon = Monitor(pred, every=1).attach()
    twin = copy.deepcopy(pred)
    twin(torch.randn(4, 16))  # not attached, not watched: no error, nothing folded
    assert mon._n == 0
    buf = io.BytesIO()
    torch.save(pred, buf)  # the whole module, hooks included
    again = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    again(torch.randn(4, 16))
    pickle.loads(pickle.dumps(pred))(torch.randn(4, 16))
    assert mon._n == 0
    pred(torch.randn(4, 16))  # the original still is
    mon.step()
    assert len(mon.history) == 1


def test_too_few_features_for_the_wp_measures():
    pred = nn.Linear(4, 4)
    Monitor(pred).attach()
    with pytest.raises(ValueError, match='d >= 8'):
        pred(torch.randn(3, 4))
    proj = nn.Linear(4, 4)  # output measures only: any d
    mon = Monitor(None, every=1, features=proj).attach()
    proj(torch.randn(5, 4))
    mon.step()
    assert set(mon.history[0]) == {'step', 'output_std', 'output_erank'}
