#!/usr/bin/env bash
# Compile modules of models/ with mypyc in a scratch copy of the tree and compare the core
# benchmark against pure Python, back to back. Nothing is built in the source tree, so no
# compiled module can shadow an edited .py (see docs/mypyc.md for the measured result:
# not enough to be worth a build step).
#
#   bench/mypyc_compare.sh [rounds] [-- core_throughput args]
#   MODULES="linear features" bench/mypyc_compare.sh 2
#
# Needs mypy (which ships mypyc) in the venv and a C compiler. The compile takes minutes
# (8-10 on a busy 2-core machine for the default set).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
case $PY in /*) ;; *) PY="$PWD/$PY" ;; esac
ROUNDS=${1:-2}
shift || true
[ "${1:-}" = "--" ] && shift
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(--customers 30000 --days 30 --worker-gc)
# models/state.py stays out: orjson (serialize.dumps_packed) segfaults on compiled dataclasses.
MODULES=${MODULES:-"linear features processor engine scoring alerts money"}

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$SCRATCH"
files=()
for m in $MODULES; do files+=("models/$m.py"); done
start=$(date +%s)
(cd "$SCRATCH" && "$PY" -m mypyc "${files[@]}" >build.log 2>&1) \
    || { tail -20 "$SCRATCH/build.log"; exit 1; }
echo "mypyc compile of ${files[*]}: $(($(date +%s) - start)) s"

for ((i = 1; i <= ROUNDS; i++)); do
    for tree in "$PWD" "$SCRATCH"; do
        label=pure; [ "$tree" = "$SCRATCH" ] && label=compiled
        rate=$(cd "$tree" && PYTHONPATH="$tree" "$PY" bench/core_throughput.py "${ARGS[@]}" \
               | grep "core (engine)")
        echo "round $i $label: $rate"
    done
done
