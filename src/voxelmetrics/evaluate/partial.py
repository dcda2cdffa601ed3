"""Partial evaluations of a shard of the cases, and their merge into one `Evaluation`.

A batch scheduler runs `voxelmetrics evaluate ... --shard I/N --partial part-I.npz` once per
shard; `voxelmetrics merge part-*.npz` checks that the parts belong together and writes the
report one run over every case would write. Every total is an exact int64 sum and each
case keeps its own row, so nothing is lost in between.

The format (`FORMAT_VERSION` 1) is a plain `.npz` archive (read with `allow_pickle=False`):

- `metadata`: uint8, the UTF-8 bytes of a JSON object: `format` ("voxelmetrics-partial"),
  `version`, `shard` `[I, N]`, `num_cases` (of the whole dataset), `options` (the engine
  `Options` as given, JSON), `report` (the report options: class names, criteria,
  zero_division, exclude, bootstrap), `pred_kind` (as resolved; null for a shard without
  cases), `surface` (the boundary measures' order in `surface`, or null) and `cases`: one
  `{index, name, pred, true, grid_shape}` per case, `index` its place in the dataset's
  (sorted) case order.
- `threshold`: float32 `[C]`; `counts`: int64 `[n, C, 4]`; `histogram` (scores): int64
  `[n, C, B, 2]`; `matrix` (label maps): int64 `[n, c, c]`, `c` the largest id of the shard
  plus one when C is inferred (`finish_label_maps` pads it to the dataset's C);
  `surface` (`--surface`): float64 `[n, M, C]`. A shard without cases has `metadata` only.
- `--lesions`: `lesion_counts` float64 `[n, C, F]` (`lesions.FIELDS`) and `lesion_rows`
  uint8, the UTF-8 bytes of a JSON list (per case) of the per-lesion rows.
"""

import dataclasses
import json
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxelmetrics.evaluate.engine import (
    CaseTotals,
    Evaluation,
    Options,
    check_histogram_budget,
    finish_label_maps,
    scores_needed_error,
)
from voxelmetrics.evaluate.lesions import CaseLesions, request_from_json
from voxelmetrics.evaluate.readers import InputError
from voxelmetrics.evaluate.regions import regions_from_json
from voxelmetrics.evaluate.report import write_file_atomically
from voxelmetrics.evaluate.surface import SurfaceRequest

FORMAT = "voxelmetrics-partial"
FORMAT_VERSION = 1
# Options that depend on the machine a shard ran on, not on the numbers: they may differ.
LOCAL_OPTIONS = ("chunk_mb", "devices")
ARRAYS = ("counts", "histogram", "matrix")


@dataclasses.dataclass
class Partial:
    """One loaded partial: where it came from, what it was run with, and its cases."""

    path: str
    shard: tuple[int, int]
    num_cases: int
    options: dict
    report: dict
    pred_kind: str | None
    threshold: np.ndarray
    indices: list[int]
    cases: list[CaseTotals]


def shard_indices(num_cases: int, shard: tuple[int, int]) -> list[int]:
    """The case indices of shard `(I, N)`: every N-th case from the I-th.

    Example:
        >>> shard_indices(7, (1, 3))
        [1, 4]
    """
    index, count = shard
    return list(range(index, num_cases, count))


def options_to_json(options: Options) -> dict:
    """`Options` as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(options)))


def options_from_json(values: dict) -> Options:
    """The `Options` of `options_to_json(options)`.

    Example:
        >>> o = Options(threshold=(0.5, 0.25), surface=SurfaceRequest(("nsd",), 2.0))
        >>> options_from_json(options_to_json(o)) == o
        True
    """
    values = dict(values)
    threshold, surface, spacing = values["threshold"], values["surface"], values["spacing"]
    values["threshold"] = tuple(threshold) if isinstance(threshold, list) else threshold
    values["surface"] = surface and SurfaceRequest.from_json(surface)
    values["spacing"] = spacing and tuple(spacing)
    values["lesions"] = request_from_json(values.get("lesions"))
    values["regions"] = regions_from_json(values.get("regions"))
    return Options(**values)


def _as_json(value):
    """`value` as it reads back from JSON (tuples as lists), for comparisons."""
    return json.loads(json.dumps(value))


def save_partial(
    path,
    evaluation: Evaluation | None,
    *,
    options: Options,
    shard: tuple[int, int],
    num_cases: int,
    indices: Sequence[int],
    report: dict,
) -> Path:
    """Write one shard's exact state to `path` (`.npz`), atomically: a hidden temporary
    beside it, renamed into place once complete (`write_file_atomically`; nothing is left
    on failure, and shards on other machines may write into the same directory).

    Args:
        evaluation: the shard's `evaluate(...)` result; None for a shard without cases.
        options: the engine options as given (`pred_kind` unresolved).
        shard: `(I, N)`.
        num_cases: the number of cases in the whole dataset.
        indices: each case's index in the dataset's case order.
        report: the report options (`summarize`'s keyword arguments).
    """
    cases = evaluation.cases if evaluation is not None else []
    if len(indices) != len(cases):
        raise ValueError(f"{len(indices)} indices for {len(cases)} cases.")
    surface = list(cases[0].surface) if cases and cases[0].surface is not None else None
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "shard": list(shard),
        "num_cases": num_cases,
        "options": options_to_json(options),
        "report": _as_json(report),
        "pred_kind": evaluation.pred_kind if evaluation is not None else None,
        "surface": surface,
        "cases": [
            {
                "index": int(i),
                "name": c.name,
                "pred": c.pred,
                "true": c.true,
                "grid_shape": list(c.grid_shape),
            }
            for i, c in zip(indices, cases, strict=True)
        ],
    }
    arrays = {"metadata": np.frombuffer(json.dumps(metadata).encode(), np.uint8)}
    if cases:
        arrays["threshold"] = evaluation.threshold
        for name in ARRAYS:
            if getattr(cases[0], name) is not None:
                arrays[name] = np.stack([getattr(c, name) for c in cases]).astype(np.int64)
        if surface is not None:
            arrays["surface"] = np.stack([[c.surface[m] for m in surface] for c in cases])
        if cases[0].lesions is not None:
            arrays["lesion_counts"] = np.stack([c.lesions.counts for c in cases])
            rows = json.dumps([c.lesions.rows for c in cases], allow_nan=True).encode()
            arrays["lesion_rows"] = np.frombuffer(rows, np.uint8)
    return write_file_atomically(path, lambda f: np.savez_compressed(f, **arrays))


def _lesion_rows(rows: list) -> list:
    """Per-lesion rows as `case_lesions` makes them (JSON turned their tuples into lists)."""
    return [{**r, "centroid": tuple(r["centroid"]), "matched": tuple(r["matched"])} for r in rows]


def load_partial(path) -> Partial:
    """Read a partial written by `save_partial`.

    Raises:
        InputError naming the file: unreadable, not a partial, corrupt, or of another
        format version.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(bytes(arrays.pop("metadata")).decode())
    except FileNotFoundError:
        raise InputError(path, "no such file.") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(
            path, f"is not a readable voxelmetrics partial (.npz written by --partial): {e}"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(path, "is an .npz archive but not a voxelmetrics partial.")
    if meta.get("version") != FORMAT_VERSION:
        raise InputError(
            path,
            f"is a partial of format version {meta.get('version')}; this voxelmetrics reads "
            f"version {FORMAT_VERSION}: evaluate the shard again with this version.",
        )
    try:
        return _partial(str(path), meta, arrays)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise InputError(path, f"is a corrupt voxelmetrics partial ({e!r}).") from None


def _partial(path: str, meta: dict, arrays: dict) -> Partial:
    cases, lesion_rows = [], None
    if "lesion_counts" in arrays:
        lesion_rows = [_lesion_rows(r) for r in json.loads(bytes(arrays["lesion_rows"]).decode())]
    for n, case in enumerate(meta["cases"]):
        fields = {name: arrays[name][n] for name in ARRAYS if name in arrays}
        if meta["surface"] is not None:
            fields["surface"] = dict(zip(meta["surface"], arrays["surface"][n], strict=True))
        if lesion_rows is not None:
            fields["lesions"] = CaseLesions(arrays["lesion_counts"][n], lesion_rows[n])
        grid = tuple(case["grid_shape"])
        fields.setdefault("counts", None)
        fields.setdefault("histogram", None)
        cases.append(CaseTotals(case["name"], case["pred"], case["true"], grid, **fields))
    shard_index, shard_count = meta["shard"]
    return Partial(
        path,
        (int(shard_index), int(shard_count)),
        int(meta["num_cases"]),
        meta["options"],
        meta["report"],
        meta["pred_kind"],
        arrays.get("threshold", np.zeros(0, np.float32)),
        [int(case["index"]) for case in meta["cases"]],
        cases,
    )


def load_partials(paths: Sequence) -> list[Partial]:
    """`load_partial` of each path, in the order given."""
    return [load_partial(p) for p in paths]


def _differences(a: dict, b: dict, ignore: Sequence[str] = ()) -> list[str]:
    keys = sorted((set(a) | set(b)) - set(ignore))
    return [f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def _check_agree(first: Partial, other: Partial) -> None:
    """Raise `InputError` naming `other` unless it was made like `first`."""
    checks = {
        "shard count": _differences({"N": first.shard[1]}, {"N": other.shard[1]}),
        "number of cases": _differences({"n": first.num_cases}, {"n": other.num_cases}),
        "options": _differences(first.options, other.options, LOCAL_OPTIONS),
        "report options": _differences(first.report, other.report),
    }
    if first.cases and other.cases:
        checks["prediction kind"] = _differences(
            {"pred_kind": first.pred_kind}, {"pred_kind": other.pred_kind}
        )
        if first.pred_kind != "labels":
            checks["classes or thresholds"] = _differences(
                {"threshold": first.threshold.tolist()}, {"threshold": other.threshold.tolist()}
            )
    for what, found in checks.items():
        if found:
            raise InputError(
                other.path,
                f"does not belong with {first.path}: other {what} ({'; '.join(found)}); "
                f"merge the parts of one run.",
            )


def _check_complete(partials: list[Partial]) -> None:
    """Every shard once, every case once: raise `InputError` naming what is missing."""
    by_shard: dict[int, str] = {}
    for p in partials:
        if p.shard[0] in by_shard:
            raise InputError(
                p.path,
                f"is shard {p.shard[0]}/{p.shard[1]}, as is {by_shard[p.shard[0]]}: a shard "
                f"given twice.",
            )
        by_shard[p.shard[0]] = p.path
    by_case: dict[int, str] = {}
    for p in partials:
        for index, case in zip(p.indices, p.cases, strict=True):
            if index in by_case:
                raise InputError(
                    p.path, f"holds case {index} ({case.name}), as does {by_case[index]}."
                )
            by_case[index] = p.path
    count, num_cases = partials[0].shard[1], partials[0].num_cases
    missing_shards = sorted(set(range(count)) - set(by_shard))
    missing_cases = sorted(set(range(num_cases)) - set(by_case))
    if missing_shards or missing_cases:
        raise InputError(
            "merge",
            f"the run was cut into {count} shard(s) of {num_cases} case(s); missing: shard(s) "
            f"{_listed(missing_shards)} (case indices {_listed(missing_cases)}). Give every "
            f"part (e.g. part-*.npz).",
        )


def _listed(values: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "") or "none"


def merge_partials(
    partials: Sequence[Partial], scores_needed_for: str | None = None
) -> tuple[Evaluation, dict]:
    """One `Evaluation` of every case, in the dataset's case order, and the report options.

    The parts must agree (format version, options but `LOCAL_OPTIONS`, report options,
    prediction kind, classes and thresholds) and hold every case once, every shard of
    `N` present; label maps without a class count finish at the largest id of any part.
    `summarize(evaluation, **report)` then gives the report of one run over every case.

    Raises:
        InputError naming the part (or what is missing), or the first part when
        `scores_needed_for` (e.g. "--plot") meets hard predictions.
    """
    partials = list(partials)
    if not partials:
        raise InputError("merge", "no partials given.")
    first = partials[0]
    for other in partials[1:]:
        _check_agree(first, other)
    _check_complete(partials)
    rows = [row for p in partials for row in zip(p.indices, p.cases, strict=True)]
    cases = [case for _, case in sorted(rows, key=lambda row: row[0])]
    with_cases = next((p for p in partials if p.cases), None)
    if with_cases is None:
        raise InputError(first.path, "holds no case, nor does any other part.")
    options = dataclasses.replace(
        options_from_json(with_cases.options), pred_kind=with_cases.pred_kind
    )
    if options.pred_kind != "scores" and scores_needed_for:
        raise scores_needed_error(with_cases.path, options.pred_kind, scores_needed_for)
    if options.pred_kind == "labels":
        return finish_label_maps(cases, options), first.report
    threshold = with_cases.threshold
    if options.pred_kind == "scores":
        check_histogram_budget(len(threshold), options.num_bins, len(cases), options.chunk_mb)
    return Evaluation(options, threshold, cases, options.pred_kind), first.report
