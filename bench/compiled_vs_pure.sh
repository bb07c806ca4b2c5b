#!/usr/bin/env bash
# Alternate bench/core_throughput.py on the compiled core and on its source
# (ARSCORE_PURE_PYTHON=1), printing the load before each run. Usage:
#   bench/compiled_vs_pure.sh ROUNDS [core_throughput.py flags...]
# e.g. bench/compiled_vs_pure.sh 3 --customers 20000 --days 120 --worker-gc
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; shift || true
for i in $(seq 1 "$rounds"); do
    for core in compiled pure; do
        echo "=== round $i, $core, $(date -u +%H:%M:%S), load:$(uptime | sed 's/.*load average://')"
        if [ "$core" = pure ]; then export ARSCORE_PURE_PYTHON=1; else unset ARSCORE_PURE_PYTHON; fi
        .venv/bin/python -c 'from models.build import describe; print(describe())'
        .venv/bin/python bench/core_throughput.py "$@"
    done
done
