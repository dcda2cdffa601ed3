#!/usr/bin/env bash
# The project's test command: lint, then the whole suite (doctests in src/, tests/, and the
# benchmarks once each in their small mode) per Keras backend, each backend in its own
# process (KERAS_BACKEND must be set before keras is imported).
#   bash scripts/test.sh                 all three backends: jax, tensorflow, torch
#   bash scripts/test.sh jax             one backend (or several: jax torch)
#   bash scripts/test.sh torch -k hist   anything after the backends goes to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
backends=()
while [ $# -gt 0 ] && [[ "$1" =~ ^(jax|tensorflow|torch)$ ]]; do
  backends+=("$1")
  shift
done
[ ${#backends[@]} -gt 0 ] || backends=(jax tensorflow torch)
ruff check .
status=0
for backend in "${backends[@]}"; do
  echo "=== KERAS_BACKEND=${backend}"
  KERAS_BACKEND="${backend}" VOXELMETRICS_BENCH_SIZE="${VOXELMETRICS_BENCH_SIZE:-small}" \
    python -m pytest -p no:cacheprovider src tests benchmarks "$@" || status=$?
done
exit "${status}"
