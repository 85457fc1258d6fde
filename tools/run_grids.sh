#!/usr/bin/env bash
# One worker that runs every grid of a CPU scale (then, with --curve NAME, that learning curve first):
#   tools/run_grids.sh fashion-mnist-20k --curve linear &  tools/run_grids.sh fashion-mnist-20k --curve directpred &
# The code is a clean worktree of HEAD (GRID_TREE, default ../gridrun-<commit>), so the runs record one commit
# and editing this checkout meanwhile changes nothing they compute; they are written into this checkout's
# results/ (`byoltheory reproduce GRID --scale S` skips finished runs, resumes an interrupted one from its
# checkpoint, copies twins, and leaves a run another worker holds to it, exiting 3). Commit finished runs as they
# come: `byoltheory status S` says what is done. A learning curve is one run: it is extended only
# by the commit that began it, so start it where it can finish.
set -euo pipefail
main() {  # read whole before it runs: editing this file meanwhile cannot change a running worker
  # the grids yield to anything else run on the machine (tests, book builds, timings), and take every idle cycle:
  # nice 19, and the same for the worker's autogroup (with the kernel's autogroup scheduling, on by default, a
  # process's nice orders it only within its own session; across sessions each autogroup's nice counts)
  renice -n 19 -p $$ >/dev/null 2>&1 || true
  echo 19 > /proc/self/autogroup 2>/dev/null || true
  here=$(cd "$(dirname "$0")/.." && pwd)
  scale=${1:?usage: tools/run_grids.sh SCALE [--curve NAME]}
  commit=$(git -C "$here" rev-parse HEAD)
  tree=${GRID_TREE:-$here/../gridrun-${commit:0:10}}
  [ -d "$tree" ] || git -C "$here" worktree add --detach "$tree" "$commit"
  [ "$(git -C "$tree" rev-parse HEAD)" = "$commit" ] || { echo "$tree is not at $commit"; exit 1; }
  export PYTHONPATH=$tree OMP_NUM_THREADS=1
  cd "$tree"
  B=$here/.venv/bin/byoltheory
  if [ "${2:-}" = --curve ]; then
    echo "== $(date +%H:%M:%S) curve ${3:?}"; $B curve "$3" --scale "$scale" --out "$here/results" || echo "!! failed: curve $3"
  fi
  grids=$($here/.venv/bin/python -c "from byoltheory.reproduce import load_grids; print(' '.join(
    n for n, g in load_grids().items() if '$scale' in g.scales))")
  for g in $grids; do
    echo "== $(date +%H:%M:%S) $g"; rc=0; $B reproduce "$g" --scale "$scale" --out "$here/results" || rc=$?
    # exit 3: the other worker holds some of its runs (it finishes them); anything else is a failure
    case $rc in 0) ;; 3) echo "   $g: the other worker holds some runs" ;; *) echo "!! failed: $g" ;; esac
  done
  echo "== $(date +%H:%M:%S) worker done"
}
main "$@"
exit
