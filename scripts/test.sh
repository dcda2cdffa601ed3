#!/usr/bin/env bash
# The project's test command: lint, then the whole suite (doctests in src/, tests/, and the
# benchmarks once each in their small mode) per Keras backend, each backend in its own
# process (KERAS_BACKEND must be set before keras is imported). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
status=0
for backend in jax tensorflow torch; do
  echo "=== KERAS_BACKEND=${backend}"
  KERAS_BACKEND="${backend}" VOXELMETRICS_BENCH_SIZE="${VOXELMETRICS_BENCH_SIZE:-small}" \
    python -m pytest -p no:cacheprovider src tests benchmarks "$@" || status=$?
done
exit "${status}"
