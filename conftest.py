"""What every test directory shares (the doctests in `src/`, `tests/`, `benchmarks/`)."""

import gc

import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each module, the programs JAX compiled for it are let go.

    Each compiled program keeps its machine code mapped into the process. The whole suite
    in one process (`scripts/test.sh`) passed Linux's limit of 65,530 memory mappings per
    process (`vm.max_map_count`), and XLA's compiler then died (SIGSEGV or SIGABRT) in the
    last benchmark module. A module that needs a program again compiles it again.
    """
    yield
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()
        gc.collect()
