"""Partial evaluations of a shard of the cases, and their merge into one `Evaluation`.

A batch scheduler runs `voxelmetrics evaluate ... --shard I/N --partial part-I.npz` once per
shard; `voxelmetrics merge part-*.npz` checks that the parts belong together and writes the
report one run over every case would write. Every total is an exact int64 sum and each
case keeps its own row, so nothing is lost in between.

The format (`FORMAT_VERSION` 2) is a plain `.npz` archive (read with `allow_pickle=False`):

- `metadata`: uint8, the UTF-8 bytes of a JSON object: `format` ("voxelmetrics-partial"),
  `version`, `shard` `[I, N]`, `dataset` (the whole run's cases in case order, each
  `[name, pred, true, pred bytes, true bytes]` with absolute paths), `options` (the
  engine `Options` as given, JSON), `report` (the report options: class names, criteria,
  zero_division, exclude, bootstrap), `pred_kind` (as resolved; null for a shard without
  cases), `surface` (the boundary measures' order in `surface`, or null) and `cases`: one
  `{index, name, pred, true, grid_shape}` per case, `index` its place in `dataset`.
  Shard count, dataset, options and report options (and, between parts with cases, the
  prediction kind and thresholds) are the run's fingerprint: `merge` refuses parts whose
  fingerprints differ and names the first difference (`fingerprint_difference`).
- `threshold`: float32 `[C]`; `counts`: int64 `[n, C, 4]`; `histogram` (scores): int64
  `[n, C, B, 2]`; `matrix` (label maps): int64 `[n, c, c]`, `c` the largest id of the shard
  plus one when C is inferred (`finish_label_maps` pads it to the dataset's C);
  `surface` (`--surface`): float64 `[n, M, C]`. A shard without cases has `metadata` only.
- `--lesions`: `lesion_counts` float64 `[n, C, F]` (`lesions.FIELDS`) and `lesion_rows`
  uint8, the UTF-8 bytes of a JSON list (per case) of the per-lesion rows.
"""

import dataclasses
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxelmetrics.evaluate.atomic_writes import write_file_atomically
from voxelmetrics.evaluate.engine import finish_label_maps, scores_needed_error
from voxelmetrics.evaluate.lesions import CaseLesions, request_from_json
from voxelmetrics.evaluate.partial_checks import PartialProblem, check_arrays, check_cases
from voxelmetrics.evaluate.planning import check_histogram_budget
from voxelmetrics.evaluate.readers import InputError
from voxelmetrics.evaluate.records import CaseTotals, Evaluation, Options
from voxelmetrics.evaluate.regions import regions_from_json
from voxelmetrics.evaluate.surface import SurfaceRequest

FORMAT = "voxelmetrics-partial"
# 2: every part holds the run's dataset (names, paths, sizes); 1 held only its case count.
FORMAT_VERSION = 2
# Options that depend on the machine a shard ran on, not on the numbers: they may differ
# (`num_classes_from` only words messages; `num_classes` itself is compared).
LOCAL_OPTIONS = ("chunk_mb", "devices", "num_classes_from")
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
    dataset: list[list] = dataclasses.field(default_factory=list)


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


def dataset_entries(dataset: Sequence[tuple]) -> list[list]:
    """The run's cases as a partial stores them: `[name, pred, true, pred bytes, true
    bytes]` in case order, paths absolute (shards started from other directories agree).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.npy").write_bytes(b"12345")
        >>> [entry] = dataset_entries([("a", folder / "a.npy", folder / "a.npy")])
        >>> entry[0], entry[3], entry[1] == str(folder / "a.npy")
        ('a', 5, True)
    """
    entries = []
    for name, pred, true in dataset:
        pred, true = os.path.abspath(pred), os.path.abspath(true)
        entries.append([name, pred, true, os.path.getsize(pred), os.path.getsize(true)])
    return entries


def _as_json(value):
    """`value` as it reads back from JSON (tuples as lists), for comparisons."""
    return json.loads(json.dumps(value))


def save_partial(
    path,
    evaluation: Evaluation | None,
    *,
    options: Options,
    shard: tuple[int, int],
    dataset: Sequence[tuple],
    indices: Sequence[int],
    report: dict,
    before_commit=None,
) -> Path:
    """Write one shard's exact state to `path` (`.npz`), atomically: a hidden temporary
    beside it, renamed into place once complete (`write_file_atomically`; nothing is left
    on failure, and shards on other machines may write into the same directory). An
    existing `path` is replaced only by the same shard (a rerun): two shards given one
    path raise instead of the second silently replacing the first (`check_partial_target`,
    also when both finish at once). `before_commit()` runs once the file is complete.

    Args:
        evaluation: the shard's `evaluate(...)` result; None for a shard without cases.
        options: the engine options as given (`pred_kind` unresolved).
        shard: `(I, N)`.
        dataset: the whole dataset's `(name, pred, true)` in case order (`pair_cases`);
            stored with the files' sizes as the run's fingerprint (`dataset_entries`).
        indices: each case's index in the dataset's case order.
        report: the report options (`summarize`'s keyword arguments).

    Raises:
        InputError: `path` holds another shard's partial, or a file that is no partial.
    """
    cases = evaluation.cases if evaluation is not None else []
    if len(indices) != len(cases):
        raise ValueError(f"{len(indices)} indices for {len(cases)} cases.")
    surface = list(cases[0].surface) if cases and cases[0].surface is not None else None
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "shard": list(shard),
        "dataset": dataset_entries(dataset),
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
        arrays["threshold"] = np.asarray(evaluation.threshold, np.float32)
        for name in ARRAYS:
            if getattr(cases[0], name) is not None:
                arrays[name] = np.stack([getattr(c, name) for c in cases]).astype(np.int64)
        if surface is not None:
            arrays["surface"] = np.stack([[c.surface[m] for m in surface] for c in cases])
        if cases[0].lesions is not None:
            arrays["lesion_counts"] = np.stack([c.lesions.counts for c in cases])
            rows = json.dumps([c.lesions.rows for c in cases], allow_nan=True).encode()
            arrays["lesion_rows"] = np.frombuffer(rows, np.uint8)

    def write(f) -> None:
        np.savez_compressed(f, **arrays)
        if before_commit is not None:
            before_commit()

    return write_file_atomically(
        path, write, before_replacing=lambda existing: check_partial_target(existing, shard)
    )


def check_partial_target(path, shard: tuple[int, int]) -> None:
    """Refuse to let shard `(I, N)` replace `path` unless it is absent or holds the partial
    of the same shard (a rerun). Reads the metadata only.

    Raises:
        InputError naming the file: it holds another shard's partial, or is no partial.
    """
    path = Path(path)
    if not path.is_file():  # absent; a directory is the writer's error to name
        return
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(bytes(archive["metadata"]).decode())
        found = tuple(meta["shard"]) if meta.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile):
        found = None
    if found == tuple(shard):
        return
    if found is None:
        raise InputError(
            path,
            "exists and is not a voxelmetrics partial: not replaced; remove it or give "
            "--partial another path.",
        )
    raise InputError(
        path,
        f"holds the partial of shard {found[0]}/{found[1]}, not {shard[0]}/{shard[1]}: give "
        f"each shard its own --partial (e.g. part-{shard[0]}.npz); nothing was replaced.",
    )


def _lesion_rows(rows: list) -> list:
    """Per-lesion rows as `case_lesions` makes them (JSON turned their tuples into lists)."""
    return [{**r, "centroid": tuple(r["centroid"]), "matched": tuple(r["matched"])} for r in rows]


def load_partial(path) -> Partial:
    """Read a partial written by `save_partial`, every array checked against its metadata
    (`partial_checks.check_arrays`) before anything uses it.

    Raises:
        InputError naming the file: unreadable, not a partial (a report, a volume), corrupt
        (arrays of another dtype, shape, sign or finiteness than the metadata says), or of
        another format version.
    """
    if not _starts_as_zip(path):
        raise InputError(
            path,
            "is not an .npz archive: merge reads the parts written by `voxelmetrics evaluate "
            "--shard I/N --partial part-I.npz` (not a report or a volume).",
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(bytes(arrays.pop("metadata", b"null")).decode())
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
        check_cases(meta)
        check_arrays(meta, arrays)
        return _partial(str(path), meta, arrays)
    except PartialProblem as e:
        raise InputError(path, f"is a corrupt voxelmetrics partial: {e}.") from None
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise InputError(path, f"is a corrupt voxelmetrics partial ({e!r}).") from None


def _starts_as_zip(path) -> bool:
    """Whether `path` begins as a zip archive does (an `.npz`, maybe truncated); True for
    what cannot be read here (`np.load` names the problem)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return True


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
        len(meta["dataset"]),
        meta["options"],
        meta["report"],
        meta["pred_kind"],
        arrays.get("threshold", np.zeros(0, np.float32)),
        [int(case["index"]) for case in meta["cases"]],
        cases,
        meta["dataset"],
    )


def load_partials(paths: Sequence) -> list[Partial]:
    """`load_partial` of each path, in the order given."""
    return [load_partial(p) for p in paths]


def _differences(a: dict, b: dict, ignore: Sequence[str] = ()) -> list[str]:
    keys = sorted((set(a) | set(b)) - set(ignore))
    return [f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def _dataset_difference(a: list[list], b: list[list]) -> list[str]:
    """The first case where two runs' datasets differ: its name, a path or a file size."""
    fields = ("name", "pred", "true", "pred bytes", "true bytes")
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            found = [f"{f} {u!r} vs {v!r}" for f, u, v in zip(fields, x, y, strict=True) if u != v]
            return [f"case {i}: {', '.join(found)}"]
    return []


def fingerprint_difference(first: Partial, other: Partial) -> tuple[str, list[str]] | None:
    """The first way `other`'s run differs from `first`'s, `(what, details)`, or None.

    In order: the shard count, the number of cases, the dataset (each case's name, both
    paths and both sizes, in case order), the options but `LOCAL_OPTIONS`, the report
    options, and between parts with cases the prediction kind and (but for label maps,
    whose class count is settled at the merge) the classes and their thresholds.
    """
    checks = {
        "shard count": lambda: _differences({"N": first.shard[1]}, {"N": other.shard[1]}),
        "number of cases": lambda: _differences({"n": first.num_cases}, {"n": other.num_cases}),
        "cases": lambda: _dataset_difference(first.dataset, other.dataset),
        "options": lambda: _differences(first.options, other.options, LOCAL_OPTIONS),
        "report options": lambda: _differences(first.report, other.report),
    }
    if first.cases and other.cases:
        checks["prediction kind"] = lambda: _differences(
            {"pred_kind": first.pred_kind}, {"pred_kind": other.pred_kind}
        )
        if first.pred_kind != "labels":
            checks["classes or thresholds"] = lambda: _differences(
                {"threshold": first.threshold.tolist()}, {"threshold": other.threshold.tolist()}
            )
    for what, check in checks.items():
        found = check()
        if found:
            return what, found
    return None


def _check_agree(first: Partial, other: Partial) -> None:
    """Raise `InputError` naming `other` unless it was made by `first`'s run."""
    difference = fingerprint_difference(first, other)
    if difference is not None:
        what, found = difference
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

    The parts must have one fingerprint (`fingerprint_difference`: shard count, dataset,
    options but `LOCAL_OPTIONS`, report options, prediction kind, classes and thresholds)
    and hold every case once, every shard of
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
