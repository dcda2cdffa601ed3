"""Running distributed workers in subprocesses, and comparing their numbers with one device.

Each engine exists only under its own Keras backend, so each test module runs only in that
backend's test process (`only_under("jax")` etc.: a skip whose reason names the backend);
under its own backend it always runs. The workers are fresh processes with their own
environment (virtual devices, `KERAS_BACKEND`), each bounded by `WORKER_TIMEOUT_S`.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()
REPO = Path(__file__).resolve().parents[2]
# A bound, not an expectation: on an idle 2-core machine each worker takes about 15 s.
WORKER_TIMEOUT_S = 120
# Float sums of non-integer values (Keras' loss mean, the sample-wise score sums) are added
# in another order across devices: equal to float32 rounding. Every other number (all
# counts, histograms, and the scores computed from them) must be bit-identical.
ROUNDED = ("loss", "samplewise_dice")


def only_under(backend: str):
    """Skip a module unless this process runs `backend`: its engine exists only there."""
    return pytest.mark.skipif(
        backend != BACKEND,
        reason=f"{backend} engine: runs in the KERAS_BACKEND={backend} test process",
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(module: str, argvs: list[list[str]], env: dict[str, str]) -> list[dict]:
    """Run `python -m module *argv` once per argv, concurrently; each one's last stdout
    line parsed as JSON. Fails the test on a non-zero exit or after `WORKER_TIMEOUT_S`."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu", **env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
            if proc.returncode != 0:
                pytest.fail(f"{module} {proc.args[3:]} exited {proc.returncode}:\n{err[-3000:]}")
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


def assert_same_logs(expected: dict, actual: dict, what: str) -> None:
    """Logs or states: bit-identical (ints and floats), except the `ROUNDED` float sums."""
    assert expected.keys() == actual.keys(), what
    for key, value in expected.items():
        if any(key.startswith(name) for name in ROUNDED):
            np.testing.assert_allclose(actual[key], value, rtol=1e-6, err_msg=f"{what}[{key}]")
        else:
            assert actual[key] == value, f"{what}[{key!r}]"


def assert_same_numbers(expected: dict, actual: dict, *, returned: bool = False) -> None:
    """States and logs of `_case.fit_and_evaluate`; with `returned`, also what fit /
    evaluate returned (global numbers only where the engine merges inside the step)."""
    assert "eval_states" in actual
    for part in ("fit_states", "eval_states", "eval_logs"):
        if part in actual:
            assert_same_logs(expected[part], actual[part], part)
    if returned:
        for call in actual["returned_logs"]:
            expected_logs = expected["returned_logs"][call]
            assert_same_logs(expected_logs, actual["returned_logs"][call], call)


@pytest.fixture(scope="module")
def one_device() -> dict:
    """`_case.fit_and_evaluate()` in this process, on one device: the reference."""
    from tests.distributed import _case

    return _case.fit_and_evaluate()


def check_reference(one_device: dict) -> None:
    """The one-device numbers themselves against numpy (int64) on the model's predictions."""
    from tests.distributed import _case
    from tests.reference import reference_counts, reference_histogram

    _, y = _case.volumes()
    scores = np.asarray(one_device["predictions"], np.float32)
    labels = y.astype(bool)
    states = one_device["eval_states"]
    counts = reference_counts(labels, scores >= np.float32(0.5))
    histogram = reference_histogram(labels, scores, _case.NUM_BINS)
    assert states["confusion_counts/count_total"] == counts.tolist()
    assert states["average_precision/histogram_total"] == histogram.tolist()
