"""`docs/design.md` names, for every rule, the one function that owns it: those names exist.

Each table row's owner and test cells are read left to right: a backticked path (`ops/x.py`
under `src/voxelmetrics/`, `tests/...` and `benchmarks/...` under the repository) opens a
module, and every backticked Python name after it must be defined there: at module level
(an import counts: a re-export), as `Class.member`, or anywhere inside it (a method named in
parentheses after its class, a parameter, a local). `path.py::test_name` must name a test of
that file. A rename that leaves the table behind fails here, naming the row's token.
"""

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "voxelmetrics"
DESIGN = ROOT / "docs" / "design.md"

TOKEN = re.compile(r"`([^`]+)`")
PYTHON_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
EXTERNAL = ("keras.", "np.", "numpy.", "scipy.", "torch.", "tf.", "jax.")


def _rows() -> list[list[str]]:
    """The cells after the first (the rule) of every row of the tables headed `| rule |`."""
    rows, in_rules = [], False
    for line in DESIGN.read_text().splitlines():
        if not line.startswith("|"):
            in_rules = False
        elif line.startswith("| rule |"):
            in_rules = True
        elif in_rules and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")][1:])
    return rows


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _module(token: str) -> Path:
    base = ROOT if token.startswith(("tests/", "benchmarks/")) else SRC
    return base / token


@functools.cache
def _names(path: Path) -> tuple[dict[str, set[str]], set[str]]:
    """(module-level names with each class's members, every name bound anywhere)."""
    tree = ast.parse(path.read_text())
    top: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top[node.name] = {n for sub in node.body for n in _bound(sub, nested=False)}
        else:
            top |= {name: set() for name in _bound(node, nested=False)}
    anywhere = {n for node in ast.walk(tree) for n in _bound(node, nested=True)}
    return top, anywhere | set(top)


def _bound(node: ast.AST, *, nested: bool) -> set[str]:
    """Names a statement binds: defs, classes, assignments, imports (and, nested, args)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if nested and isinstance(node, ast.arg):
        return {node.arg}
    if nested and isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return {node.id}
    return set()


def _problem(module: Path, name: str) -> str | None:
    top, anywhere = _names(module)
    first, *rest = name.split(".")
    if not rest:
        return None if first in anywhere else f"`{name}` is not in {_shown(module)}"
    if first in top:
        ok = rest[0] in top[first] or not top[first]  # a constant's or an import's attribute
        return None if ok else f"`{name}`: {first} has no member {rest[0]}"
    other = SRC / f"{first}.py"  # `defaults.SURFACE_CONVENTIONS`: a module of the package
    if other.exists() and len(rest) == 1:
        return None if rest[0] in _names(other)[0] else f"`{name}` is not in {other.name}"
    return f"`{name}`: {first} is not in {_shown(module)}"


def _cell_problems(cell: str) -> list[str]:
    problems, module = [], None
    for token in TOKEN.findall(cell):
        path, _, test = token.partition("::")
        if path.endswith(".py"):
            module = _module(path)
            if not module.exists():
                problems.append(f"`{path}` does not exist")
                module = None
            elif test and test.split("[")[0] not in _names(module)[0]:
                problems.append(f"`{token}`: no such test")
        elif module is not None and PYTHON_NAME.fullmatch(token) and not token.startswith(EXTERNAL):
            problems.append(_problem(module, token))
    return [p for p in problems if p]


@pytest.mark.parametrize("row", _rows(), ids=lambda row: row[0][:60])
def test_every_name_a_row_gives_exists_where_it_says(row):
    assert "`" in row[0] and ".py`" in row[0], f"the row names no owner module: {row[0]}"
    problems = [p for cell in row for p in _cell_problems(cell)]
    assert not problems, problems


def test_a_renamed_owner_is_caught(tmp_path, monkeypatch):
    """The check itself: a name that is nowhere in its module is reported."""
    module = tmp_path / "m.py"
    module.write_text("import os\n\nclass A:\n    def b(self, c):\n        d = c\n")
    monkeypatch.setattr(
        f"{__name__}._module", lambda token: module if token == "m.py" else tmp_path / token
    )
    assert _cell_problems("`m.py` `A.b`, `os`, `c`, `d`") == []
    assert _cell_problems("`m.py` `A.e`") == ["`A.e`: A has no member e"]
    assert _cell_problems("`m.py` `gone`") == [f"`gone` is not in {_shown(module)}"]
    assert _cell_problems("`missing.py` `x`") == ["`missing.py` does not exist"]
