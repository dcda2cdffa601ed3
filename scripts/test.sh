#!/usr/bin/env bash
# The project's test command: lint, then the whole suite once per Keras backend, each in its
# own process (KERAS_BACKEND must be set before keras is imported). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
status=0
for backend in jax tensorflow torch; do
  echo "=== KERAS_BACKEND=${backend}"
  KERAS_BACKEND="${backend}" python -m pytest -p no:cacheprovider "$@" || status=$?
done
exit "${status}"
