"""DirectPredictor inside the BYOL code users already have: byol-pytorch's own `BYOL` module and
loop, a loop shaped like lightly's examples (one call per view), solo-learn-style multi-crop (8 calls a
step) and gradient accumulation (4 micro-batches per optimiser step). In each, after every optimiser
step, F̂ must equal an independent float64 recursion over exactly the rows the predictor saw in
training calls since the last step (Eq 19 once per step), to 1e-5 relative, and W_p must be re-set
to Eq 18 of it after steps 0, freq, 2·freq, … and only then; calls under no_grad or in eval mode
must change nothing."""
import copy, re
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from byoltheory.directpred import DirectPredictor, directpred_weight

ROOT = Path(__file__).resolve().parents[1]
RHO, EPS = 0.3, 0.1


class Recorder:
    """Watches a DirectPredictor from outside: the rows of every training call (a forward
    pre-hook), and F̂, W_p after every optimiser step (a step hook registered after `attach`)."""
    def __init__(self, dp, opt):
        self.dp, self.rows, self.steps, self.resets = dp, [], [], []
        dp.register_forward_pre_hook(self.see)
        opt.register_step_post_hook(self.after_step)
        set_weight = dp.set_weight
        def counted():
            self.resets.append(len(self.steps))
            set_weight()
        dp.set_weight = counted

    def see(self, module, args):
        if module.training and torch.is_grad_enabled():
            self.rows.append(args[0].detach().reshape(-1, module.dim).double())

    def after_step(self, opt, args, kwargs):
        self.steps.append((torch.cat(self.rows), self.dp.F.double().clone(),
                           self.dp.weight.detach().double().clone()))
        self.rows = []


def check(rec, n_steps, freq=1):
    "F̂ and W_p after each step against the recursion; the re-sets after steps 0, freq, 2·freq, …"
    assert len(rec.steps) == n_steps
    assert rec.resets == list(range(0, n_steps, freq))
    F_ref = None
    for t, (rows, F_mod, W_mod) in enumerate(rec.steps):
        S = (rows.T @ rows / len(rows)).numpy()
        F_ref = S if F_ref is None else RHO * F_ref + (1 - RHO) * S
        assert np.linalg.norm(F_mod.numpy() - F_ref) <= 1e-5 * np.linalg.norm(F_ref), t
        if t % freq == 0:  # Eq 18 of this F̂ (of F̂, not of F_ref: √s amplifies F's round-off
            # near s = 0 beyond 1e-5, in the reference as much as in the module)
            W_ref = directpred_weight(F_mod.numpy(), eps=EPS, form='official')
            assert np.linalg.norm(W_mod.numpy() - W_ref) <= 1e-5 * np.linalg.norm(W_ref), t
    return rec


def small_net(d_out=16):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, d_out))


@pytest.mark.parametrize('freq', [1, 3])
def test_byol_pytorch(freq):
    "byol-pytorch calls the predictor once a step, on both views concatenated."
    from byol_pytorch import BYOL
    torch.manual_seed(0)
    net = nn.Sequential(small_net(32), nn.ReLU(), nn.Linear(32, 10))
    learner = BYOL(net, image_size=16, hidden_layer=-2, projection_size=16,
                   projection_hidden_size=32, use_simplicial_embeddings=False)
    learner.online_predictor = DirectPredictor(16, rho=RHO, eps=EPS, freq=freq)
    opt = torch.optim.SGD(learner.parameters(), lr=0.03, momentum=0.9, weight_decay=4e-4)
    learner.online_predictor.attach(opt)                       # the documented one line
    rec = Recorder(learner.online_predictor, opt)
    for step in range(10):
        loss = learner(torch.rand(8, 3, 16, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.update_moving_average()
        with torch.no_grad():
            learner(torch.rand(4, 3, 16, 16))                  # a probe: changes nothing
    check(rec, 10, freq)
    assert [len(rows) for rows, _, _ in rec.steps] == [16] * 10   # both views, one call each step


def _cos(p, z):
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def _two_view_loss(online, target, dp, x1, x2):
    return _cos(dp(online(x1)), target(x2)) + _cos(dp(online(x2)), target(x1))


def _momentum(target, online, m=0.99):
    with torch.no_grad():
        for pt, po in zip(target.parameters(), online.parameters()): pt.lerp_(po, 1 - m)


def _loop(seed, *head, freq=1, **sgd):
    """A client's own BYOL pieces: online network (small_net → head → 16), its EMA target, a
    DirectPredictor attached to the client's SGD (over the predictor's weight too at freq > 1)."""
    torch.manual_seed(seed)
    online = nn.Sequential(small_net(32), *head, nn.ReLU(), nn.Linear(32, 16))
    target = copy.deepcopy(online).requires_grad_(False)
    dp = DirectPredictor(16, rho=RHO, eps=EPS, freq=freq)
    opt = torch.optim.SGD(list(online.parameters()) + list(dp.parameters()), **sgd)
    dp.attach(opt)
    return online, target, dp, opt, Recorder(dp, opt)


def test_lightly_shaped_loop():
    "lightly's BYOL example: backbone → projection head, the predictor called once per view."
    online, target, dp, opt, rec = _loop(1, nn.BatchNorm1d(32), lr=0.06)
    for step in range(10):
        x = torch.rand(12, 3, 16, 16)
        x0, x1 = x + 0.1 * torch.randn_like(x), x.flip(-1)
        loss = 0.5 * _two_view_loss(online, target, dp, x0, x1)
        loss.backward()
        opt.step()
        opt.zero_grad()
        _momentum(target, online)
        dp.eval()(torch.randn(5, 16)); dp.train()               # an eval-mode call: nothing
    check(rec, 10)
    assert [len(rows) for rows, _, _ in rec.steps] == [24] * 10


def test_multi_crop():
    "solo-learn's multi-crop: 2 large and 6 small crops, the predictor called on each (8 a step)."
    online, target, dp, opt, rec = _loop(2, freq=2, lr=0.05)
    for step in range(10):
        x = torch.rand(6, 3, 24, 24)
        large = [x[..., :20, :20], x[..., 4:, 4:]]
        small = [x[..., i:i + 10, j:j + 10] for i in (0, 7, 14) for j in (0, 14)]
        with torch.no_grad(): z = [target(c) for c in large]
        p = [dp(online(c)) for c in large + small]
        loss = sum(_cos(pi, z[1 - i if i < 2 else 0]) for i, pi in enumerate(p)) / len(p)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _momentum(target, online)
    check(rec, 10, freq=2)
    assert [len(rows) for rows, _, _ in rec.steps] == [48] * 10


def test_gradient_accumulation():
    "4 micro-batches of two views per optimiser step: 8 calls, one Eq 19 update."
    online, target, dp, opt, rec = _loop(3, lr=0.05, momentum=0.9)
    for step in range(10):
        for micro in range(4):
            x = torch.rand(5, 3, 16, 16)
            loss = _two_view_loss(online, target, dp, x, x.flip(-1)) / 4
            loss.backward()
        opt.step()
        opt.zero_grad()
        _momentum(target, online)
    check(rec, 10)
    assert [len(rows) for rows, _, _ in rec.steps] == [40] * 10


def test_a_loop_without_attach_is_told_which_line_to_add():
    dp = DirectPredictor(16)
    with pytest.raises(RuntimeError, match=r'predictor\.attach\(optimizer\)'):
        dp(torch.randn(4, 16))


def _snippet(path, marker):
    "The fenced python block of `path` (README or a notebook's markdown) that contains `marker`."
    text = path.read_text()
    if path.suffix == '.ipynb':
        import json
        text = '\n'.join(''.join(c['source']) for c in json.loads(text)['cells']
                         if c['cell_type'] == 'markdown')
    blocks = [b for b in re.findall(r'```python\n(.*?)```', text, re.S) if marker in b]
    assert len(blocks) == 1, (path, len(blocks))
    return blocks[0]


@pytest.mark.parametrize('where', ['README.md', 'nbs/05_directpred.ipynb'])
def test_the_documented_byol_pytorch_example_runs_as_written(where):
    code = _snippet(ROOT / where, 'from byol_pytorch import BYOL')
    scope = {}
    exec(compile(code, where, 'exec'), scope)
    dp = scope['learner'].online_predictor
    assert isinstance(dp, DirectPredictor) and dp.steps == 3 and bool(dp.seen.all())
