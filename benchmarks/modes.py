"""Benchmark: N BYOL mode trajectories (Eqs 11-13, EMA) at matched per-trajectory accuracy.

Three ways to integrate them, each at the loosest tolerance (rtol from a ladder, atol = rtol/100)
whose largest error on a reference subset is below --target:

  loop       what a reader writes first: scipy's solve_ivp, one trajectory at a time, with a lean
             right-hand side (plain floats, no validation):
                 def rhs(t, y):
                     p, s, tau = y; g = tau - (1 + sigma2) * p; h = p * g - eta
                     return [alpha_p * s * g - eta * p, 2 * s * h, beta * (1 - tau) - tau * h]
                 solve_ivp(rhs, (0, T), [p0, s0, tau0], t_eval=t, rtol=rtol, atol=atol)
             (timed on the reference subset, scaled to N)
  flattened  the better first try: one solve_ivp on the whole batch flattened into one system,
             the same equations on numpy arrays
  ours       byoltheory.modes.integrate_modes (validates its input once, then
             byoltheory.core.odeint: RK45 on the flattened batch, output at exactly t)

The error is measured against solve_ivp(method='DOP853', rtol=1e-12, atol=1e-14) per trajectory
on the first --subset trajectories. Prints each time and the ratios, measured in this process.
Usage: python benchmarks/modes.py [--n 10000] [--subset 200] [--target 1e-6]"""
import argparse, time
import numpy as np
from scipy.integrate import solve_ivp
from byoltheory.modes import integrate_modes, mode_flow

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--n', type=int, default=10_000, help='number of trajectories')
ap.add_argument('--subset', type=int, default=200, help='reference trajectories (>= 50)')
ap.add_argument('--target', type=float, default=1e-6, help='largest error allowed (> 0)')
args = ap.parse_args()
if args.subset < 50 or args.subset > args.n:
    ap.error(f'--subset must be in [50, --n], got {args.subset}')
if not args.target > 0: ap.error(f'--target must be > 0, got {args.target}')

hp = dict(alpha_p=1.0, beta=0.5, eta=0.02, sigma2=0.3)
a_p, beta, eta, s2 = hp['alpha_p'], hp['beta'], hp['eta'], hp['sigma2']
rng = np.random.default_rng(0)
p0, s0 = rng.uniform(0.0, 1.5, args.n), rng.uniform(0.0, 1.5, args.n)
tau0 = np.zeros(args.n)
t = np.linspace(0, 50, 101)
k = args.subset
LADDER = [10.0**-e for e in range(4, 13)]


def rhs(_, y):  # the lean right-hand side of the docstring
    p, s, tau = y
    g = tau - (1 + s2) * p
    h = p * g - eta
    return [a_p * s * g - eta * p, 2 * s * h, beta * (1 - tau) - tau * h]


def rhs_flat(_, y):  # the same on the flattened batch (p, s, tau stacked)
    p, s, tau = y.reshape(3, -1)
    g = tau - (1 + s2) * p
    h = p * g - eta
    return np.concatenate([a_p * s * g - eta * p, 2 * s * h, beta * (1 - tau) - tau * h])


# the baselines' right-hand sides are Eqs 11-13 as the library states them
y = rng.uniform(0, 1, (3, 7))
assert np.allclose(rhs(0, y), mode_flow(*y, **hp)) and np.allclose(rhs_flat(0, y.ravel()),
                                                                     np.ravel(mode_flow(*y, **hp)))

ref = np.stack([solve_ivp(rhs, (t[0], t[-1]), [p0[i], s0[i], tau0[i]], t_eval=t,
                          method='DOP853', rtol=1e-12, atol=1e-14).y for i in range(k)])


def loop(rtol):
    return np.stack([solve_ivp(rhs, (t[0], t[-1]), [p0[i], s0[i], tau0[i]], t_eval=t,
                               rtol=rtol, atol=rtol / 100).y for i in range(k)])


def flattened(rtol):
    sol = solve_ivp(rhs_flat, (t[0], t[-1]), np.concatenate([p0, s0, tau0]), t_eval=t,
                    rtol=rtol, atol=rtol / 100)
    return sol.y.reshape(3, args.n, len(t)).transpose(1, 0, 2)


def ours(rtol):
    tr = integrate_modes(p0, s0, t, tau0=tau0, ema=True, rtol=rtol, atol=rtol / 100, **hp)
    return np.stack([tr.p, tr.s, tr.tau]).transpose(2, 0, 1)


def matched(fn, scale):
    "Loosest tolerance on the ladder that meets the target: (rtol, error, seconds for N)."
    for rtol in LADDER:
        start = time.perf_counter()
        out = fn(rtol)
        sec = (time.perf_counter() - start) * scale
        err = float(np.abs(out[:k] - ref).max())
        if err <= args.target: return rtol, err, sec
    raise SystemExit(f'{fn.__name__}: no tolerance down to {LADDER[-1]:g} meets --target')


ours(1e-6)  # warm-up (imports, first calls)
res = {'loop': matched(loop, args.n / k), 'flattened': matched(flattened, 1),
       'ours': matched(ours, 1)}


def best_of(fn, rtol, reps=3):
    "Best of `reps` timings of fn(rtol)."
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(rtol)
        times.append(time.perf_counter() - start)
    return min(times)


# time again at the matched tolerance, best of 3 (the loop once: it is scaled from the subset)
for name, fn in (('flattened', flattened), ('ours', ours)):
    rtol, err, _ = res[name]
    res[name] = (rtol, err, best_of(fn, rtol))
print(f"{args.n} trajectories of Eqs 11-13 (EMA), t = 0..{t[-1]:g} at {len(t)} times, {hp}")
print(f"matched accuracy: largest |error| <= {args.target:g} on {k} reference trajectories")
for name, (rtol, err, sec) in res.items():
    print(f"  {name:9s} rtol {rtol:7.0e}  error {err:8.1e}  {sec:8.3f} s")
print(f"ours vs loop: {res['loop'][2] / res['ours'][2]:.0f}x faster; "
      f"ours vs flattened solve_ivp: {res['flattened'][2] / res['ours'][2]:.2f}x")
