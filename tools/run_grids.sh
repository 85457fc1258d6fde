#!/usr/bin/env bash
# Regenerate the committed CPU grids from one commit: two workers side by side, one torch thread each.
#   tools/run_grids.sh A &  tools/run_grids.sh B &      (then copy GRID_TREE/results/* into results/)
# GRID_COMMIT: the commit the committed runs record (default: the one in results/digits/table6);
# GRID_TREE: a worktree of it (created if missing, default ../gridrun). Finished runs are skipped, an interrupted
# run resumes from its checkpoint, twins are copied, and file locks keep the two workers on different runs, so the
# same two commands continue a grid after any stop. The learning curves of chapter 10 are not grids: they run
# on their own (byoltheory curve linear / directpred, at the commit their files record). The single re-run of the
# Fashion-MNIST grids at the calibrated scale (chapter 10b) has its own tool: tools/rerun.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
commit=${GRID_COMMIT:-$(python3 -c "import json,glob; print(json.load(open(sorted(glob.glob('$here/results/digits/table6/*-seed0.json'))[0]))['git_commit'])")}
tree=${GRID_TREE:-$here/../gridrun}
[ -d "$tree" ] || git -C "$here" worktree add --detach "$tree" "$commit"
[ "$(git -C "$tree" rev-parse HEAD)" = "$commit" ] || { echo "$tree is not at $commit"; exit 1; }
export PYTHONPATH=$tree OMP_NUM_THREADS=1
cd "$tree"
B=$here/.venv/bin/byoltheory
run() { echo "== $(date +%H:%M:%S) $*"; $B reproduce "$@" --out results || echo "!! failed: $*"; }
FM="fig2 table3 table1 table6 table7 fig6 table5 table2 table8"
DG="fig2 table6 table7 table8 table1 table3 table3-regime table2 table5 fig6"
if [ "${1:-}" = A ]; then
  for g in $DG; do run "$g" --scale digits; done
  for g in $FM; do run "$g" --scale fashion-mnist; done
elif [ "${1:-}" = B ]; then
  for g in $FM; do run "$g" --scale fashion-mnist; done
  for g in $DG; do run "$g" --scale digits; done
else
  echo "usage: tools/run_grids.sh A|B"; exit 2
fi
echo "== $(date +%H:%M:%S) worker $1 done"
