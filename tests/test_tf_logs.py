"""TensorFlow's C++ log lines: silent in the CLI, its worker processes and after importing
voxelmetrics, unless the user set `TF_CPP_MIN_LOG_LEVEL` (issue 21 fault 4)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import BACKEND
from voxelmetrics._tf_logs import quiet_tensorflow_defaults

# A C++ log line of TensorFlow / absl / XLA ("I0000 00:00:17.. 123 port.cc:153] ..."), and
# absl's notice that it logs to stderr before being initialised.
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]", re.M)
ABSL_NOTICE = "absl::InitializeLog"
CHOICES = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")


def _env(**chosen: str) -> dict:
    """This environment with no TensorFlow log choice but `chosen`, our `src` importable."""
    env = {k: v for k, v in os.environ.items() if k not in CHOICES}
    return {**env, **chosen, "PYTHONPATH": os.pathsep.join(sys.path)}


def _noise(stderr: str) -> list[str]:
    lines = [m.group(0) for m in CPP_LOG_LINE.finditer(stderr)]
    return lines + [line for line in stderr.splitlines() if ABSL_NOTICE in line or "oneDNN" in line]


@pytest.fixture
def cases(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("pred", "true"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        np.save(tmp_path / "pred" / f"case{i}.npy", rng.random((6, 5, 4, 2), np.float32))
        np.save(tmp_path / "true" / f"case{i}.npy", (rng.random((6, 5, 4, 2)) < 0.4).astype("u1"))
    return tmp_path


def _evaluate(cases, *extra: str, **chosen: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "voxelmetrics", "evaluate", "pred", "true", *extra]
    env = _env(KERAS_BACKEND=BACKEND, **chosen)
    return subprocess.run(argv, cwd=cases, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("extra", [(), ("--workers", "2")])
def test_evaluate_prints_no_tensorflow_cpp_lines(cases, extra):
    """Under TensorFlow these lines came twice (once per shared library), plus an int32
    ERROR at the first graph; the other backends import TensorFlow too where it is
    installed, so every backend is checked."""
    run = _evaluate(cases, *extra)
    assert run.returncode == 0, run.stderr
    assert "case1" in run.stdout or "micro" in run.stdout
    assert _noise(run.stderr) == [], run.stderr


def test_a_users_log_level_is_kept():
    """`TF_CPP_MIN_LOG_LEVEL=0` is a choice: TensorFlow logs as it would without us."""
    code = "import voxelmetrics, os, tensorflow; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="0"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "None" and _noise(run.stderr), run.stderr


def test_importing_voxelmetrics_first_quiets_tensorflow():
    code = "import voxelmetrics, tensorflow as tf; tf.function(lambda x: x + 1)(tf.constant([1]))"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(KERAS_BACKEND=BACKEND),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert _noise(run.stderr) == [], run.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}),
        ({"TF_CPP_MIN_LOG_LEVEL": "0"}, {}),
        ({"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "1"}, {}),
        ({"TF_ENABLE_ONEDNN_OPTS": "1"}, {"TF_CPP_MIN_LOG_LEVEL": "2"}),
    ],
)
def test_defaults_never_override_a_choice(environ, expected):
    assert quiet_tensorflow_defaults(environ) == expected
