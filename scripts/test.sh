#!/usr/bin/env bash
# The project's test command: lint, then the whole suite (doctests in src/, tests/, and the
# benchmarks once each in their small mode) per Keras backend, each backend in its own
# process (KERAS_BACKEND must be set before keras is imported).
#   bash scripts/test.sh                 all three backends: jax, tensorflow, torch
#   bash scripts/test.sh jax             one backend (or several: jax torch)
#   bash scripts/test.sh torch -k hist   anything after the backends goes to pytest
#   bash scripts/test.sh torch tests/ops  paths (or node ids) given: only those run; without
#                                         any, the whole suite (src tests benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
backends=()
while [ $# -gt 0 ] && [[ "$1" =~ ^(jax|tensorflow|torch)$ ]]; do
  backends+=("$1")
  shift
done
[ ${#backends[@]} -gt 0 ] || backends=(jax tensorflow torch)
# A path is an argument that names a file or directory (a node id by its part before ::),
# unless it is the value of a pytest option that takes one (-k hist, --ignore tests/x).
paths_given=0
value_next=0
for arg in "$@"; do
  if [ "${value_next}" = 1 ]; then
    value_next=0
  elif [[ "${arg}" =~ ^(-k|-m|-p|-o|-c|-W|-r|-n|--deselect|--ignore|--ignore-glob|--maxfail|--durations|--tb|--basetemp|--rootdir|--confcutdir)$ ]]; then
    value_next=1
  elif [[ "${arg}" != -* ]] && [ -e "${arg%%::*}" ]; then
    paths_given=1
  fi
done
defaults=(src tests benchmarks)
[ "${paths_given}" = 0 ] || defaults=()
ruff check .
status=0
for backend in "${backends[@]}"; do
  echo "=== KERAS_BACKEND=${backend}"
  KERAS_BACKEND="${backend}" VOXELMETRICS_BENCH_SIZE="${VOXELMETRICS_BENCH_SIZE:-small}" \
    python -m pytest -p no:cacheprovider ${defaults[@]+"${defaults[@]}"} "$@" || status=$?
done
exit "${status}"
