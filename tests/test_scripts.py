"""`scripts/test.sh`, the README's test command: which backends, and what reaches pytest.

`python` and `ruff` are replaced on PATH by stubs that record their arguments, so the
script's choices are checked without running the suite.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUB = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
DEFAULT = "python -m pytest -p no:cacheprovider src tests benchmarks"


def _calls(tmp_path, *args) -> list[str]:
    """The commands `bash scripts/test.sh ARGS` runs, one line each."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "ruff"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(calls)}
    subprocess.run(["bash", "scripts/test.sh", *args], cwd=ROOT, env=env, check=True)
    return calls.read_text().splitlines()


@pytest.mark.parametrize(
    ("args", "pytest_args"),
    [
        (["torch", "tests/ops"], "tests/ops"),
        (["jax", "tests/ops", "tests/test_cli.py", "-x"], "tests/ops tests/test_cli.py -x"),
        (
            ["jax", "tests/test_cli.py::test_shape_mismatch"],
            "tests/test_cli.py::test_shape_mismatch",
        ),
        (["torch", "-x"], "src tests benchmarks -x"),
        (["torch", "-k", "hist"], "src tests benchmarks -k hist"),
        (["torch", "-k", "tests"], "src tests benchmarks -k tests"),  # a value, not a path
        (["torch"], "src tests benchmarks"),
    ],
)
def test_only_the_paths_given_reach_pytest(tmp_path, args, pytest_args):
    """Issue 21, fault 14: `src tests benchmarks` were passed even with paths given."""
    lint, *runs = _calls(tmp_path, *args)
    assert lint == "ruff check ."
    assert runs == [f"python -m pytest -p no:cacheprovider {pytest_args}".strip()]


def test_every_backend_runs_without_backend_names(tmp_path):
    assert _calls(tmp_path)[1:] == [DEFAULT] * 3
