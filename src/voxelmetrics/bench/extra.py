"""The `bench` extra: the peers `voxelmetrics bench` times us against, installed on demand.

scikit-learn and torchmetrics are no dependency of the library; `pip install
'voxelmetrics[bench]'` brings them (the `test` extra includes it). A missing one is named
with that command: before any worker starts (`check_extras`), or where a path imports it
(`require`).
"""

import importlib
import importlib.util

EXTRA = "voxelmetrics[bench]"
# The module each peer is imported as -> the distribution pyproject's `bench` extra names.
PACKAGES = {"sklearn": "scikit-learn", "torchmetrics": "torchmetrics"}


class MissingExtra(ImportError):
    """A peer of `voxelmetrics bench` is not installed."""


def missing_message(modules: list[str]) -> str:
    """The one line naming the missing peers and the extra that installs them.

    Example:
        >>> missing_message(["sklearn"])
        "voxelmetrics bench needs scikit-learn (not installed): pip install 'voxelmetrics[bench]'"
    """
    names = " and ".join(PACKAGES.get(m, m) for m in modules)
    return f"voxelmetrics bench needs {names} (not installed): pip install '{EXTRA}'"


def require(module: str):
    """`importlib.import_module(module)`, or `MissingExtra` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(f"{missing_message([module.split('.')[0]])} ({error})") from error


def missing_extras(modules: list[str]) -> list[str]:
    """The top-level modules of `modules` that cannot be found (nothing is imported)."""
    tops = dict.fromkeys(m.split(".")[0] for m in modules)
    return [m for m in tops if importlib.util.find_spec(m) is None]
