"""Benchmark: 10,000 BYOL mode trajectories (Eqs 11-13) with byoltheory.modes.integrate_modes
(one vectorised adaptive integrator for the whole batch) against a per-trajectory loop of
scipy.integrate.solve_ivp (RK45, rtol 1e-6), timed on a subset and scaled to 10,000.
Prints both times, their ratio, and the largest difference between the two on the subset.
Usage: python benchmarks/modes.py [--n 10000] [--subset 200]"""
import argparse, time
import numpy as np
from scipy.integrate import solve_ivp
from byoltheory.modes import integrate_modes, mode_flow

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--n', type=int, default=10_000, help='number of trajectories (default 10000)')
ap.add_argument('--subset', type=int, default=200, help='trajectories timed with solve_ivp (>= 200)')
args = ap.parse_args()
if args.subset < 200: ap.error('--subset must be at least 200')

hp = dict(alpha_p=1.0, beta=0.5, eta=0.02, sigma2=0.3)
rng = np.random.default_rng(0)
p0, s0, tau0 = rng.uniform(0.0, 1.5, args.n), rng.uniform(0.0, 1.5, args.n), np.zeros(args.n)
t = np.linspace(0, 50, 101)

start = time.perf_counter()
ours = integrate_modes(p0, s0, t, tau0=tau0, ema=True, rtol=1e-7, atol=1e-9, **hp)
t_ours = time.perf_counter() - start

def rhs(_, y): return np.array(mode_flow(y[0], y[1], y[2], **hp))
start = time.perf_counter()
ref = np.stack([solve_ivp(rhs, (t[0], t[-1]), [p0[i], s0[i], tau0[i]], t_eval=t, rtol=1e-6, atol=1e-9).y
                for i in range(args.subset)])                      # (subset, 3, len(t))
t_loop = (time.perf_counter() - start) * args.n / args.subset

diff = max(np.abs(ref[:, 0].T - ours.p[:, :args.subset]).max(), np.abs(ref[:, 1].T - ours.s[:, :args.subset]).max(),
           np.abs(ref[:, 2].T - ours.tau[:, :args.subset]).max())
print(f"trajectories: {args.n}, horizon t = 0..{t[-1]:g}, {len(t)} output times, hyper-parameters {hp}")
print(f"integrate_modes (vectorised, rtol 1e-7): {t_ours:8.2f} s")
print(f"solve_ivp loop (RK45, rtol 1e-6), {args.subset} timed, scaled to {args.n}: {t_loop:8.2f} s")
print(f"speed-up: {t_loop / t_ours:.0f}x   (target >= 100x)")
print(f"max |difference| on the {args.subset} shared trajectories (p, s, tau): {diff:.2e}")
