"""`import voxelmetrics` picks JAX only where the user chose no Keras backend.

Each case runs in a fresh interpreter (Keras reads the backend once, on import) with its own
KERAS_HOME, so no keras.json of this machine leaks in. They run once, in the jax run.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import BACKEND
from voxelmetrics._backend_default import _KERAS_WRITTEN_DEFAULT


def backend_after(tmp_path, code: str, *, env_backend=None, keras_json=None) -> str:
    home = tmp_path / "keras_home"
    home.mkdir()
    if keras_json is not None:
        (home / "keras.json").write_text(json.dumps(keras_json))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(home)
    if env_backend:
        env["KERAS_BACKEND"] = env_backend
    run = subprocess.run(
        [sys.executable, "-c", code + "\nprint(keras.backend.backend())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return run.stdout.strip().splitlines()[-1]


VM_FIRST = "import voxelmetrics\nimport keras"
# Every case starts its own interpreters, whatever this process' backend: run them once.
pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="subprocess cases; run in the jax run")


@pytest.mark.parametrize(
    ("env_backend", "keras_json", "expected"),
    [
        (None, None, "jax"),  # nothing chosen
        (None, _KERAS_WRITTEN_DEFAULT, "jax"),  # the file Keras writes unasked is no choice
        (None, {**_KERAS_WRITTEN_DEFAULT, "epsilon": 1e-6}, "tensorflow"),  # an edited file
        (None, {**_KERAS_WRITTEN_DEFAULT, "backend": "torch"}, "torch"),
        ("torch", None, "torch"),  # the environment variable wins
        ("tensorflow", {**_KERAS_WRITTEN_DEFAULT, "backend": "torch"}, "tensorflow"),
    ],
)
def test_voxelmetrics_first_never_overrides_a_choice(tmp_path, env_backend, keras_json, expected):
    assert backend_after(tmp_path, VM_FIRST, env_backend=env_backend, keras_json=keras_json) == (
        expected
    )


def test_keras_imported_first_keeps_its_own_default(tmp_path):
    assert backend_after(tmp_path, "import keras\nimport voxelmetrics") == "tensorflow"
