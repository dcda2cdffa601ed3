"""Runs every script in examples/ and compares its output with the block the README shows.

Each README block is introduced by "Real output of [`examples/NAME.py`]" and is JAX output,
so the scripts run in a subprocess with KERAS_BACKEND=jax, an empty KERAS_HOME (no user
keras.json can redirect them) and a private TMPDIR that must be empty afterwards (examples
clean up after themselves). The suite runs once per backend; this file runs in the jax run.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
_BLOCK = re.compile(r"Real output of \[`(examples/[\w.]+\.py)`\][^\n]*\n```text\n(.*?)```", re.S)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the README's example outputs are JAX output; the examples run in the jax run only",
)


def readme_blocks() -> dict[str, str]:
    """`{"examples/x.py": expected stdout}` for every output block in the README."""
    return dict(_BLOCK.findall((ROOT / "README.md").read_text()))


def test_every_example_has_a_readme_block():
    shown = set(readme_blocks())
    scripts = {f"examples/{path.name}" for path in EXAMPLES}
    assert scripts == shown, f"without a README block: {scripts - shown}; stale: {shown - scripts}"


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
def test_example_prints_what_the_readme_shows(script, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "keras_home").mkdir()
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "KERAS_HOME": str(tmp_path / "keras_home"),
        "TMPDIR": str(temp),
    }
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    expected = readme_blocks()[f"examples/{script.name}"]
    assert run.stdout.strip() == expected.strip()
    assert not list(temp.iterdir()), "the example left temporary files behind"
