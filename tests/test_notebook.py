"""Executes notebooks/multilabel_recall_done_right.ipynb from top to bottom.

The notebook asserts its own numbers against scikit-learn, so executing it without an error
is the test. It runs in a fresh kernel (a subprocess of this interpreter) with
KERAS_BACKEND=jax, the backend the notebook documents, whatever backend this pytest process
runs. The suite runs once per backend (scripts/test.sh); the notebook runs in the JAX run
only, so once per suite. About a minute on two CPU cores. It must leave no temporary files.
"""

import os
from pathlib import Path

import keras
import nbformat
import pytest
from ipykernel.kernelspec import get_kernel_dict
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "multilabel_recall_done_right.ipynb"
CELL_TIMEOUT_S = 300


class _ThisInterpreter(KernelManager):
    """A kernel on `sys.executable`, not whichever `python` an installed kernelspec names."""

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(**get_kernel_dict())


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    stored = [i for i, cell in enumerate(nb.cells) if cell.get("outputs")]
    assert not stored, f"cells {stored} carry stored outputs; clear them before committing"


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the notebook runs under JAX in its own kernel; executed in the jax run only",
)
def test_notebook_executes(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        km=_ThisInterpreter(),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # Raises CellExecutionError, with the failing cell and its traceback, on any error.
    client.execute(env={**os.environ, "KERAS_BACKEND": "jax", "TMPDIR": str(temp)})
    assert not list(temp.iterdir()), "the notebook left temporary files behind"
