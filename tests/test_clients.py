"""DirectPredictor inside the BYOL code users already have: byol-pytorch's own `BYOL` module and
loop, a loop shaped like lightly's examples (one call per view), solo-learn-style multi-crop (8 calls a
step) and gradient accumulation (4 micro-batches per optimiser step). In each, after every optimiser
step, F̂ must equal an independent float64 recursion over exactly the rows the predictor saw in
training calls since the last step (Eq 19 once per step), to 1e-5 relative, and W_p must be re-set
to Eq 18 of it after steps 0, freq, 2·freq, … and only then; calls under no_grad or in eval mode
must change nothing. Each loop runs in float32 and under CPU bf16 autocast (F̂ stays float32 sums,
to the same tolerance); a DistributedDataParallel run (two gloo processes) checks every loop shape
against the pooled rows of both ranks; a stale step boundary and misuse of `attach` are errors or
warnings that name the fix."""
import contextlib, copy, gc, re, warnings
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
        self.dp, self.rows, self.steps, self.resets, self.dtypes = dp, [], [], [], set()
        dp.register_forward_pre_hook(self.see)
        opt.register_step_post_hook(self.after_step)
        set_weight = dp.set_weight
        def counted():
            self.resets.append(len(self.steps))
            set_weight()
        dp.set_weight = counted

    def see(self, module, args):
        if module.training and torch.is_grad_enabled():
            self.dtypes.add(args[0].dtype)
            self.rows.append(args[0].detach().reshape(-1, module.dim).double())

    def after_step(self, opt, args, kwargs):
        self.steps.append((torch.cat(self.rows), self.dp.F.double().clone(),
                           self.dp.weight.detach().double().clone()))
        self.rows = []


def check(rec, n_steps, freq=1, amp=False):
    """F̂ and W_p after each step against the recursion; the re-sets after steps 0, freq, 2·freq, …
    (amp: the rows the predictor saw were autocast's bf16, and F̂ is float32 all the same)."""
    assert rec.dtypes == {torch.bfloat16 if amp else torch.float32}
    assert rec.dp.F.dtype == torch.float32
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


def _amp(on):
    "CPU bf16 autocast (what Lightning's precision='bf16-mixed' does), or nothing."
    return torch.autocast('cpu', dtype=torch.bfloat16) if on else contextlib.nullcontext()


@pytest.mark.parametrize('amp', [False, True])
@pytest.mark.parametrize('freq', [1, 3])
def test_byol_pytorch(freq, amp):
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
        with _amp(amp):
            loss = learner(torch.rand(8, 3, 16, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.update_moving_average()
        with torch.no_grad():
            learner(torch.rand(4, 3, 16, 16))                  # a probe: changes nothing
    check(rec, 10, freq, amp)
    assert [len(rows) for rows, _, _ in rec.steps] == [16] * 10   # both views, one call each step


def _cos(p, z):
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def _two_view_loss(online, target, dp, x1, x2):
    return _cos(dp(online(x1)), target(x2)) + _cos(dp(online(x2)), target(x1))


def multi_crop_loss(online, target, pred, x):
    "solo-learn's multi-crop loss on a batch x: 2 large and 6 small crops, the predictor on each."
    large = [x[..., :20, :20], x[..., 4:, 4:]]
    small = [x[..., i:i + 10, j:j + 10] for i in (0, 7, 14) for j in (0, 14)]
    with torch.no_grad(): z = [target(c) for c in large]
    p = [pred(online(c)) for c in large + small]
    return sum(_cos(pi, z[1 - i if i < 2 else 0]) for i, pi in enumerate(p)) / len(p)


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


@pytest.mark.parametrize('amp', [False, True])
def test_lightly_shaped_loop(amp):
    "lightly's BYOL example: backbone → projection head, the predictor called once per view."
    online, target, dp, opt, rec = _loop(1, nn.BatchNorm1d(32), lr=0.06)
    for step in range(10):
        x = torch.rand(12, 3, 16, 16)
        x0, x1 = x + 0.1 * torch.randn_like(x), x.flip(-1)
        with _amp(amp):
            loss = 0.5 * _two_view_loss(online, target, dp, x0, x1)
        loss.backward()
        opt.step()
        opt.zero_grad()
        _momentum(target, online)
        dp.eval()(torch.randn(5, 16)); dp.train()               # an eval-mode call: nothing
    check(rec, 10, amp=amp)
    assert [len(rows) for rows, _, _ in rec.steps] == [24] * 10


@pytest.mark.parametrize('amp', [False, True])
def test_multi_crop(amp):
    "solo-learn's multi-crop: 2 large and 6 small crops, the predictor called on each (8 a step)."
    online, target, dp, opt, rec = _loop(2, freq=2, lr=0.05)
    for step in range(10):
        with _amp(amp): loss = multi_crop_loss(online, target, dp, torch.rand(6, 3, 24, 24))
        opt.zero_grad()
        loss.backward()
        opt.step()
        _momentum(target, online)
    check(rec, 10, freq=2, amp=amp)
    assert [len(rows) for rows, _, _ in rec.steps] == [48] * 10


@pytest.mark.parametrize('amp', [False, True])
def test_gradient_accumulation(amp):
    "4 micro-batches of two views per optimiser step: 8 calls, one Eq 19 update."
    online, target, dp, opt, rec = _loop(3, lr=0.05, momentum=0.9)
    for step in range(10):
        for micro in range(4):
            x = torch.rand(5, 3, 16, 16)
            with _amp(amp):
                loss = _two_view_loss(online, target, dp, x, x.flip(-1)) / 4
            loss.backward()
        opt.step()
        opt.zero_grad()
        _momentum(target, online)
    check(rec, 10, amp=amp)
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


def _steps(online, target, dp, opt, n):
    "n steps of the two-view loop with `opt`."
    for _ in range(n):
        x = torch.rand(4, 3, 16, 16)
        loss = _two_view_loss(online, target, dp, x, x.flip(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_an_optimizer_recreated_after_attach_is_an_error_within_one_step():
    "Resuming, or a scheduler or wrapper rebuilding it: the old optimiser still alive, or gone."
    online, target, dp, opt, rec = _loop(4, lr=0.05)
    _steps(online, target, dp, opt, 2)
    old, opt = opt, torch.optim.SGD(online.parameters(), lr=0.05)  # re-created; old lives
    with pytest.raises(RuntimeError, match=r'attach\(new_optimizer\)'):
        _steps(online, target, dp, opt, 2)                  # the first step passes, the next fails
    assert dp.steps == 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dp.attach(opt)                                      # the fix the error names: no warning
    _steps(online, target, dp, opt, 2)
    assert dp.steps == 4
    del opt, old, rec
    gc.collect()                                            # the attached optimiser is gone
    with pytest.raises(RuntimeError, match=r'garbage-collected.*attach\(new_optimizer\)'):
        dp(torch.randn(4, 16))


def test_many_calls_without_a_step_is_an_error():
    dp = DirectPredictor(4).attach()                        # stepped by hand, and never stepped
    for _ in range(DirectPredictor.max_calls_per_step):
        dp(torch.randn(2, 4))
    with pytest.raises(RuntimeError, match=r'max_calls_per_step.*attach\(new_optimizer\)'):
        dp(torch.randn(2, 4))
    dp.step()
    dp(torch.randn(2, 4))                                   # a step ends it
    assert dp.steps == 1


class Lookahead(torch.optim.Optimizer):
    "A wrapper that is an Optimizer (Lookahead, ZeRO): its step steps an inner one first."
    def __init__(self, inner):
        self.inner = inner
        super().__init__(inner.param_groups, {})

    def step(self, closure=None): self.inner.step()


def test_other_optimizers_stepping_beside_the_attached_one_are_no_error():
    "A probe's optimiser stepping before the attached one; an inner optimiser inside a wrapper."
    online, target, dp, opt, rec = _loop(5, lr=0.05)
    probe = nn.Linear(16, 10)
    probe_opt = torch.optim.SGD(probe.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.rand(4, 3, 16, 16)
        loss = _two_view_loss(online, target, dp, x, x.flip(-1))
        loss = loss + F.cross_entropy(probe(online(x).detach()), torch.zeros(4, dtype=int))
        loss.backward()
        probe_opt.step()                                    # another optimiser, first
        opt.step()
        opt.zero_grad(); probe_opt.zero_grad()
    wrapped = Lookahead(torch.optim.SGD(list(online.parameters()), lr=0.05))
    dp.attach(wrapped, replace=True)
    _steps(online, target, dp, wrapped, 3)                  # the inner step, then the wrapper's
    assert dp.steps == 6


class LARC:
    "A LARC-style wrapper (apex, torchlars): not an Optimizer, its `step` calls the inner one's."
    def __init__(self, optim): self.optim = optim
    def step(self): self.optim.step()


def test_attach_names_the_fix_for_what_it_cannot_take():
    net = nn.Linear(4, 4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    for given, fix in [(LARC(opt), r'attach\(x\.optim\)'), (sched, r'attach\(x\.optimizer\)'),
                       (net.parameters(), r'parameters.*not the optimi[sz]er')]:
        with pytest.raises(TypeError, match=fix):
            DirectPredictor(4).attach(given)
    dp = DirectPredictor(4).attach(LARC(opt).optim)         # the fix works: LARC's step steps
    dp(net(torch.randn(3, 4))).sum().backward()
    LARC(opt).step()
    assert dp.steps == 1


def test_attach_to_a_second_live_optimizer_warns_unless_replace():
    net = nn.Linear(4, 4)
    o1, o2 = (torch.optim.SGD(net.parameters(), lr=0.1) for _ in range(2))
    dp = DirectPredictor(4).attach(o1)
    with pytest.warns(UserWarning, match='replace=True'):
        dp.attach(o2)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dp.attach(o1, replace=True)                         # said: no warning
        dp.attach(o1)                                       # the same one again: no warning
    dp(net(torch.randn(3, 4))).sum().backward()
    o2.step()
    assert dp.steps == 0                                    # o2 no longer ends steps
    o1.step()
    assert dp.steps == 1


def test_freq_above_one_warns_when_the_optimizer_does_not_train_W_p():
    "An optimiser built before the predictor was swapped in: nothing trains W_p between re-sets."
    online = nn.Linear(8, 16)
    opt = torch.optim.SGD(online.parameters(), lr=0.1)     # built first …
    dp = DirectPredictor(16, freq=5)                        # … then the predictor swapped in
    with pytest.warns(UserWarning, match=r'freq=5.*not among the optimi[sz]er'):
        dp.attach(opt)
    opt = torch.optim.SGD(list(online.parameters()) + list(dp.parameters()), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dp.attach(opt, replace=True)


# DistributedDataParallel: two gloo processes on the CPU, every loop shape. Cases: (shape,
# broadcast_buffers, freq, partitions); 'one': one forward a step on both views, 'two': one per view
# (lightly's loop), 'no_sync': two micro-batches of two forwards, the first under `no_sync`.
DDP_CASES = [('one', True, 1, 1), ('one', False, 1, 1), ('two', True, 1, 1), ('two', False, 1, 1),
             ('no_sync', True, 1, 1), ('no_sync', False, 1, 1), ('two', True, 2, 1),
             ('two', True, 1, 2)]
CALLS = {'one': 1, 'two': 2, 'no_sync': 4}  # training calls a step


def _ddp_case(rank, shape, bcast, freq, k, steps=4):
    "One rank's run of a case: per step, the rows of each training call, then F̂ and W_p."
    from torch.nn.parallel import DistributedDataParallel as DDP
    torch.manual_seed(0)                                     # the same start on both ranks
    online = nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 8))
    dp = DirectPredictor(8, rho=RHO, eps=EPS, freq=freq, partitions=k, seed=5)
    model = DDP(nn.Sequential(online, dp), broadcast_buffers=bcast)
    target = copy.deepcopy(online).requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dp.attach(opt)
    calls, log = [], []
    dp.register_forward_pre_hook(
        lambda m, a: calls.append(a[0].detach().clone()) if torch.is_grad_enabled() else None)
    opt.register_step_post_hook(lambda o, a, kw: log.append(
        (calls[:], dp.F.clone(), dp.weight.detach().clone())) or calls.clear())
    g = torch.Generator().manual_seed(100 + rank)            # each rank its own rows
    micro = 2 if shape == 'no_sync' else 1
    for step in range(steps):
        for m in range(micro):
            x = torch.randn(6, 6, generator=g) * torch.linspace(0.5, 2, 6)
            x1, x2 = (x + 0.2 * torch.randn(6, 6, generator=g) for _ in range(2))
            with model.no_sync() if m < micro - 1 else contextlib.nullcontext():
                p1, p2 = model(torch.cat([x1, x2])).chunk(2) if shape == 'one' else \
                    (model(x1), model(x2))
                ((_cos(p1, target(x2)) + _cos(p2, target(x1))) / micro).backward()
        opt.step()
        opt.zero_grad()
    return log


def _ddp_worker(rank, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore', '`broadcast_buffers` is deprecated')  # newer torch
    dist.init_process_group('gloo', init_method=f'file://{out}/store', rank=rank, world_size=2)
    torch.save({case: _ddp_case(rank, *case) for case in DDP_CASES}, f'{out}/rank{rank}.pt')
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def ddp_runs(tmp_path_factory):
    "Both ranks' logs of every case (this file run as a script: rank 0, and rank 1 forked)."
    import os, subprocess, sys
    out = tmp_path_factory.mktemp('ddp')
    r = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    return [torch.load(out / f'rank{rank}.pt') for rank in (0, 1)]


@pytest.mark.parametrize('case', DDP_CASES, ids=lambda c: '-'.join(map(str, c)))
def test_ddp_every_loop_shape(ddp_runs, case):
    """F̂ after each step is the pooled mean over both ranks and every row (Eq 19 in float64; with
    partitions, the module in one process on both ranks' rows), W_p the same on both ranks."""
    shape, bcast, freq, k = case
    ref, F_ref = DirectPredictor(8, rho=RHO, eps=EPS, partitions=k, seed=5).attach(), None
    for t, ((c0, F0, W0), (c1, F1, W1)) in enumerate(zip(*(run[case] for run in ddp_runs))):
        assert len(c0) == len(c1) == CALLS[shape]
        if k == 1:
            rows = torch.cat(c0 + c1).double()
            S = rows.T @ rows / len(rows)
            F_ref = S if F_ref is None else RHO * F_ref + (1 - RHO) * S
        else:
            for a, b in zip(c0, c1): ref(torch.cat([a, b]))  # each call on both ranks' rows
            ref.step()
            F_ref = ref.F.double()
        for F_rank in (F0, F1):
            assert (F_rank.double() - F_ref).norm() <= 1e-5 * F_ref.norm(), (t, case)
        assert torch.equal(W0, W1) and torch.equal(F0, F1)
        if k == 1 and t % freq == 0:
            W_ref = directpred_weight(F0.double(), eps=EPS, form='official')
            assert (W0.double() - W_ref).norm() <= 1e-5 * W_ref.norm(), t
    assert t == 3


if __name__ == '__main__':  # the DDP run of `ddp_runs`: python tests/test_clients.py OUT
    import sys
    import torch.multiprocessing as mp
    how = 'fork' if sys.platform == 'linux' else 'spawn'    # fork: torch is imported once
    rank1 = mp.get_context(how).Process(target=_ddp_worker, args=(1, sys.argv[1]))
    rank1.start()
    _ddp_worker(0, sys.argv[1])                             # rank 0: this process
    rank1.join()
    sys.exit(rank1.exitcode)
