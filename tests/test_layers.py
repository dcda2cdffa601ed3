"""Each layer of the package imports only from the layers below it (`docs/design.md`, Layers).

Read from the source with `ast` (imports inside functions too), so a lazy import that
climbs a layer fails here as well as a module-level one.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "voxelmetrics"

# The layers, bottom up: a module may import its own layer and those below it.
LAYERS = (
    ("defaults", "_scalar_checks", "_docs", "_threads", "_tf_logs", "_backend_default"),
    ("backends",),
    ("ops",),
    ("metrics", "losses", "calibration"),
    ("evaluate", "cli"),
    ("bench", "voxelmetrics"),  # `import voxelmetrics`: the whole public API
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
ENTRY_POINTS = ("__init__.py", "__main__.py")  # the package's face: they import the layers
# `voxelmetrics bench` is parsed by the CLI and run by the bench layer, imported on demand.
ALLOWED = {("cli/bench.py", "bench")}


def _part(module: str) -> str:
    """The layer name of `voxelmetrics.ops.x` (`ops`); `voxelmetrics` for the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imported(tree: ast.AST) -> list[str]:
    """Every `voxelmetrics` module a source imports, anywhere in it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "voxelmetrics":  # `from voxelmetrics import defaults`
                found += [f"voxelmetrics.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return [m for m in found if m.split(".")[0] == "voxelmetrics"]


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).as_posix() not in ENTRY_POINTS)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(SRC).as_posix())
def test_a_module_imports_no_layer_above_its_own(path):
    where = path.relative_to(SRC).as_posix()
    mine = path.relative_to(SRC).parts[0].removesuffix(".py")
    assert mine in RANK, f"{where} belongs to no layer: add it to LAYERS (and docs/design.md)"
    above = [
        m
        for m in _imported(ast.parse(path.read_text()))
        if RANK[_part(m)] > RANK[mine] and (where, _part(m)) not in ALLOWED
    ]
    assert not above, f"{where} ({mine}) imports from a layer above it: {above}"


def test_an_import_from_above_is_caught():
    tree = ast.parse("def f():\n    from voxelmetrics.evaluate import engine\n")
    assert [RANK[_part(m)] > RANK["ops"] for m in _imported(tree)] == [True]
