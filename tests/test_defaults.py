"""Every default the library, the engine, the CLI and bench use is `voxelmetrics.defaults`'.

The signatures are read with `inspect` over every module of the package (a changed value
fails here) and their source with `ast` (a default typed again, `num_bins=1024`, fails
too). `voxelmetrics --help` importing no Keras is
`tests/test_cli.py::test_help_imports_no_keras_jax_tensorflow_or_matplotlib`.
"""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import get_args

import pytest

import voxelmetrics
from voxelmetrics import defaults

# parameter name -> the default it must have wherever it has one (None: resolved inside).
EXPECTED = {
    "num_bins": defaults.NUM_BINS,
    "threshold": defaults.THRESHOLD,
    "thresholds": defaults.THRESHOLD,
    "chunk_mb": defaults.CHUNK_MB,
    "bootstrap": defaults.BOOTSTRAP,
    "resamples": defaults.BOOTSTRAP,
    "criterion": defaults.CRITERION,
    "surface_convention": defaults.SURFACE_CONVENTION,
    "zero_division": defaults.ZERO_DIVISION,
    "connectivity": defaults.CONNECTIVITY,
    "match_threshold": defaults.MATCH_THRESHOLD,
}


def _signatures():
    """(qualified name, inspect.Signature) of every function and method of the package."""
    for info in pkgutil.walk_packages(voxelmetrics.__path__, "voxelmetrics."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            functions = [obj] if inspect.isfunction(obj) else []
            if inspect.isclass(obj):
                functions = [f for f in vars(obj).values() if inspect.isfunction(f)]
            for function in functions:
                yield f"{module.__name__}.{function.__qualname__}", inspect.signature(function)


def _defaults_of(name: str) -> dict[str, object]:
    found = {}
    for where, signature in _signatures():
        parameter = signature.parameters.get(name)
        if parameter is not None and parameter.default not in (inspect.Parameter.empty, None):
            found[where] = parameter.default
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_signature_default_is_the_one_module(name):
    found = _defaults_of(name)
    assert found, f"no function takes {name}=: the walk over the package found nothing"
    wrong = {where: value for where, value in found.items() if value != EXPECTED[name]}
    assert not wrong, f"{name} defaults other than defaults' {EXPECTED[name]!r}: {wrong}"


def test_the_walk_sees_the_layers_that_take_each_default():
    """The walk reaches the ops, metrics, calibration, engine, report and CLI (a walk that
    missed a layer would pass the test above vacuously for it)."""
    num_bins = _defaults_of("num_bins")
    for layer in ("ops.", "metrics.", "calibration.", "evaluate.records."):
        assert any(where.startswith(f"voxelmetrics.{layer}") for where in num_bins), layer
    assert any(w.startswith("voxelmetrics.cli.") for w in _defaults_of("bootstrap"))
    assert any(w.startswith("voxelmetrics.ops.") for w in _defaults_of("threshold"))


def test_engine_options_and_the_metrics_threshold():
    from voxelmetrics.evaluate.planning import PRED_KINDS
    from voxelmetrics.evaluate.records import Options
    from voxelmetrics.metrics._base import working_threshold

    options = Options()
    assert options.num_bins == defaults.NUM_BINS and options.chunk_mb == defaults.CHUNK_MB
    assert options.threshold == defaults.THRESHOLD and options.pred_kind == defaults.PRED_KIND
    assert PRED_KINDS == defaults.PRED_KINDS
    assert working_threshold(None, 3, "multilabel") == defaults.THRESHOLD


def test_cli_shows_and_uses_the_defaults():
    from voxelmetrics.cli import build_parser

    args = build_parser().parse_args(["evaluate", "pred", "true"])
    assert args.num_bins == defaults.NUM_BINS and args.chunk_mb == defaults.CHUNK_MB
    assert args.threshold == (defaults.THRESHOLD,) and args.bootstrap == defaults.BOOTSTRAP
    assert args.pred_kind == defaults.PRED_KIND
    evaluate = next(
        a.choices["evaluate"] for a in build_parser()._actions if getattr(a, "choices", None)
    )
    kinds = next(a for a in evaluate._actions if a.dest == "pred_kind")
    assert tuple(kinds.choices) == defaults.PRED_KINDS
    text = evaluate.format_help()
    assert f"(default: {defaults.NUM_BINS})" in text
    assert f"(default: {defaults.BOOTSTRAP}, seeded; 0: off)" in " ".join(text.split())


def test_criterion_spellings_name_every_criterion():
    """The CLI's help spells each criterion of `CRITERIA`, and `Criterion` reads the one
    module's names and default."""
    from voxelmetrics.ops import criterion

    assert get_args(defaults.CriterionName) == defaults.CRITERIA
    assert criterion.Criterion().name == defaults.CRITERION
    spelled = {s.split(":")[0] for s in defaults.CRITERION_SPELLINGS.split(", ")}
    assert spelled == set(defaults.CRITERIA)


def test_bench_reads_the_defaults():
    from voxelmetrics import bench

    assert bench.NUM_BINS == defaults.NUM_BINS and bench.THRESHOLD == defaults.THRESHOLD


def _literal_defaults(path):
    """(line, parameter) of each default of an `EXPECTED` parameter (or a `convention`: the
    boundary's and the lesions' name their own) written as a literal (`threshold=0.5`) in
    the source at `path`, function parameters and class fields alike."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        pairs = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(
                zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True)
            )
            pairs += [
                (k, v) for k, v in zip(a.kwonlyargs, a.kw_defaults, strict=True) if v is not None
            ]
            pairs = [(arg.arg, value) for arg, value in pairs]
        elif isinstance(node, ast.ClassDef):
            pairs = [
                (s.target.id, s.value)
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value
            ]
        for name, value in pairs:
            literal = isinstance(value, ast.Constant | ast.Tuple) and ast.unparse(value) != "None"
            if (name in EXPECTED or name == "convention") and literal:
                found.append((value.lineno, name))
    return found


def test_no_default_of_the_one_module_is_typed_again():
    """Equal values are not enough: `threshold=0.5` typed again would outlive a change of
    `defaults.THRESHOLD`, so every such default names the module's constant."""
    package = Path(voxelmetrics.__file__).parent
    typed = {
        f"{path.relative_to(package)}:{line} {name}": None
        for path in sorted(package.rglob("*.py"))
        if path.name != "defaults.py"
        for line, name in _literal_defaults(path)
    }
    assert not typed, f"defaults typed again instead of named: {sorted(typed)}"


@pytest.mark.parametrize("module", ["defaults", "_scalar_checks", "_docs"])
def test_the_modules_the_cli_reads_before_parsing_import_only_the_standard_library(module):
    """The CLI reads them before parsing (defaults, the scalar checks) and the ops below the
    metrics complete their docstrings with `_docs`: none may pull Keras, numpy or the
    package in."""
    source = inspect.getsource(importlib.import_module(f"voxelmetrics.{module}"))
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"typing", "math", "numbers", "collections"}, imported
