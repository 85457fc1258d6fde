#!/bin/bash
# Run a command as this project's slower CPU kind would: every numeric library capped at AVX2, and
# (as root, with cgroup v1's cpu controller) the whole process tree slowed by a factor.
#
#   tools/as_avx2.sh [--slower F] COMMAND...
#   e.g. rm -rf /tmp/x && git clone -q . /tmp/x && cd /tmp/x \
#          && tools/as_avx2.sh --slower 1.5 bash -c 'make test && make book'
#
# The caps: ATen's kernels (ATEN_CPU_CAPABILITY), oneDNN's convolutions (ONEDNN_MAX_CPU_ISA), MKL
# and OpenBLAS's matrix products, NumPy's own loops. With them an AVX-512 machine computes as an
# AVX2 one does: the digits run that `make book` re-runs lands 0.222221 from its committed numbers
# under the caps, as it did on an AVX2 machine (0.22), and 0 without them on the AMD kind with
# AVX-512. The caps do not make this CPU as slow as that kind: --slower does, roughly.
# torch.compile's kernels follow ATEN_CPU_CAPABILITY, but its on-disk cache does not tell them
# apart: a kernel cached for AVX-512 and loaded under the AVX2 cap crashes (SIGSEGV), so the
# command gets a cache of its own.
#
# --slower F lets the tree use 2/F of this machine's 2 cores (cfs quota): with two busy processes,
# as in the test and book stages, each runs F times slower; a lone process is not slowed below
# one core. Leave it out where there is no writable /sys/fs/cgroup/cpu.
set -euo pipefail
slower=
if [ "${1:-}" = --slower ]; then slower=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--slower F] COMMAND..." >&2; exit 2; }
if [ -n "$slower" ]; then
  awk -v f="$slower" 'BEGIN { exit !(f >= 1 && f <= 10) }' \
    || { echo "--slower must be between 1 and 10, got $slower" >&2; exit 2; }
  cg=/sys/fs/cgroup/cpu/byoltheory-as-avx2
  mkdir -p "$cg" 2>/dev/null && [ -w "$cg/cpu.cfs_quota_us" ] \
    || { echo "--slower needs root and cgroup v1's cpu controller (/sys/fs/cgroup/cpu)" >&2; exit 2; }
  echo 100000 > "$cg/cpu.cfs_period_us"
  awk -v f="$slower" -v n="$(nproc)" 'BEGIN { printf "%d\n", 100000 * n / f }' > "$cg/cpu.cfs_quota_us"
  echo $$ > "$cg/tasks"
fi
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2
export MKL_ENABLE_INSTRUCTIONS=AVX2 OPENBLAS_CORETYPE=Haswell
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
export TORCHINDUCTOR_CACHE_DIR="${TMPDIR:-/tmp}/byoltheory-avx2-inductor"
echo "== as an AVX2 machine${slower:+, $slower times slower}: $*" >&2
exec "$@"
