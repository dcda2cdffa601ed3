"""The ratios peer / ours with their targets, as a text table or Markdown (README)."""

from collections.abc import Callable

import numpy as np

from voxelmetrics.bench.paths import NUM_BINS, PATH_NOTES, TORCHMETRICS_CHUNK_BYTES

# The targets are stated for volumes of the default size or larger: on smaller ones fixed
# per-call costs (dispatch, a Python loop over classes) dominate and a verdict means nothing.
VERDICT_MIN_SCORES = 2 * 128**3 * 4
# (name, peer path, our path, target, higher_is_better). A ratio is peer_time / our_time.
COMPARISONS = (
    ("Keras AUC+F1+P/R(class_id) / our report", "keras_report", "ours_report", 5.0),
    ("Keras P/R(class_id) / our fused counts", "keras_counts", "ours_counts", 3.0),
    (
        f"Keras AUC({NUM_BINS}, PR) / our {NUM_BINS}-bin histogram",
        "keras_auc",
        "ours_hist_scatter",
        None,
    ),
    ("torchmetrics StatScores / our counts", "tm_stat_scores", "ours_counts", 10.0),
    ("torchmetrics PRCurve(100) / our report", "tm_prc_100", "ours_report", 10.0),
    ("torchmetrics PRCurve(1000) / our report", "tm_prc_1000", "ours_report", 10.0),
    ("sklearn mcm+PR curves+AP / our report", "sklearn", "ours_report", 30.0),
    ("sklearn mcm+PR curves+AP / our exact mode", "sklearn", "ours_exact", 3.0),
    ("scatter histogram / sorted-score histogram", "ours_hist_scatter", "ours_hist_sort", None),
)


def compare(backends: dict) -> list[dict]:
    """One row per comparison: the ratio peer/ours per backend, and whether the target is met."""
    rows = []
    for name, peer, ours, target in COMPARISONS:
        row = {"comparison": name, "peer": peer, "ours": ours, "target": target, "ratios": {}}
        for backend, result in backends.items():
            times = result.get("times", {})
            if "seconds" in times.get(peer, {}) and "seconds" in times.get(ours, {}):
                row["ratios"][backend] = times[peer]["seconds"] / times[ours]["seconds"]
        rows.append(row)
    floors = [
        {
            "comparison": f"{label} / floor (lower is better)",
            "ours": path,
            "target": target,
            "ratios": {},
        }
        for label, path, target in (
            ("our report", "ours_report", 10.0),
            ("our counts", "ours_counts", None),
        )
    ]
    scaling = {"comparison": "scaling exponent of our report (N, 4N, 16N)", "ratios": {}}
    for backend, result in backends.items():
        times = result.get("times", {})
        for floor in floors:
            if "seconds" in times.get("floor", {}) and "seconds" in times.get(floor["ours"], {}):
                floor["ratios"][backend] = (
                    times[floor["ours"]]["seconds"] / times["floor"]["seconds"]
                )
        if "scaling" in result:
            scaling["ratios"][backend] = result["scaling"]["exponent"]
    return [*rows, *floors, scaling]


def _verdict(row: dict, value: float) -> str:
    target = row.get("target")
    if target is None:
        return ""
    lower = row["comparison"].endswith("(lower is better)")
    met = value <= target if lower else value >= target
    return " ok" if met else " MISS"


def format_table(results: dict) -> str:
    """The ratio table, then the raw times (and peak memory) per path and backend."""
    backends = list(results["backends"])
    m = results["machine"]
    shape = tuple(results["shape"])
    judged = _judged(shape)
    lines = [
        f"voxelmetrics bench: volume {shape}, {_volume_text(shape)}; "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB",
        "",
    ]
    if not judged:
        lines += [_NOT_JUDGED, ""]
    rows = [["comparison", "target", *backends]]
    for row in results["comparisons"]:
        target = row.get("target")
        target_text = "" if target is None else _target_text(row, target)
        rows.append([row["comparison"], target_text, *_ratio_cells(row, backends, "-", judged)])
    lines += [*_aligned(rows), ""]
    paths = dict.fromkeys(p for r in results["backends"].values() for p in r.get("times", {}))
    rows = [["path (best time, ms)", *backends, "what"]]
    for path in paths:
        rows.append([path, *_path_cells(results, "times", path, _time_text, "-"), PATH_NOTES[path]])
    lines += _aligned(rows)
    if any("memory_mb" in r for r in results["backends"].values()):
        rows = [["peak RSS above inputs, MiB", *backends]]
        for path in paths:
            rows.append([path, *_path_cells(results, "memory_mb", path, _memory_text, "-")])
        lines += ["", *_aligned(rows)]
    if any(p.startswith("tm_prc") for p in paths):
        c = shape[-1]
        need = {t: int(np.prod(shape)) * t * 24 / 2**30 for t in (100, 1000)}
        lines.append(
            f"* one update on the whole volume holds int64 [voxels, {c}, T] temporaries "
            f"(~{need[100]:.0f} GiB at T=100, ~{need[1000]:.0f} GiB at T=1000): fed in "
            f"chunks of <= {TORCHMETRICS_CHUNK_BYTES / 2**30:.0f} GiB, as with bounded memory"
        )
    for b, r in results["backends"].items():
        if "error" in r:
            lines.append(f"{b}: {r['error']}")
        for path, t in r.get("times", {}).items():
            if "error" in t:
                lines.append(f"{b} {path}: {t['error']}")
    return "\n".join(lines)


def format_markdown(results: dict) -> str:
    """The ratio table and the raw times as Markdown, for the README."""
    backends = list(results["backends"])
    m = results["machine"]
    shape = tuple(results["shape"])
    judged = _judged(shape)
    lines = [
        f"Volume {shape} ({_volume_text(shape)}), {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gb']} GB RAM, CPU only.",
        "",
        *([] if judged else [_NOT_JUDGED, ""]),
        "| comparison | target | " + " | ".join(backends) + " |",
        "|---|---|" + "---|" * len(backends),
    ]
    for row in results["comparisons"]:
        target = row.get("target")
        cells = _ratio_cells(row, backends, "–", judged)
        target_text = "" if target is None else _target_text(row, target)
        lines.append(f"| {row['comparison']} | {target_text} | " + " | ".join(cells) + " |")
    lines += ["", "| path | " + " | ".join(f"{b} (ms)" for b in backends) + " | what |"]
    lines.append("|---|" + "---|" * len(backends) + "---|")
    paths = dict.fromkeys(p for r in results["backends"].values() for p in r.get("times", {}))
    for path in paths:
        cells = _path_cells(results, "times", path, _time_text, "–")
        lines.append(f"| {path} | " + " | ".join(cells) + f" | {PATH_NOTES[path]} |")
    if any("memory_mb" in r for r in results["backends"].values()):
        lines += ["", "| peak RSS above the inputs (MiB) | " + " | ".join(backends) + " |"]
        lines.append("|---|" + "---|" * len(backends))
        for path in paths:
            cells = _path_cells(results, "memory_mb", path, _memory_text, "–")
            lines.append(f"| {path} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio_cells(row: dict, backends: list[str], missing: str, judged: bool) -> list[str]:
    """One comparison's cells: the ratio (with its verdict if `judged`), or the exponent."""
    cells = []
    for b in backends:
        value = row["ratios"].get(b)
        if value is None:
            cells.append(missing)
        elif "exponent" in row["comparison"]:
            cells.append(f"{value:.2f}")
        else:
            cells.append(_ratio_text(value) + (_verdict(row, value) if judged else ""))
    return cells


_NOT_JUDGED = (
    f"(targets are judged on volumes of at least {VERDICT_MIN_SCORES:,} scores, the default "
    "size; on this one fixed per-call costs dominate, so no verdicts)"
)


def _judged(shape: tuple[int, ...]) -> bool:
    """Whether the volume is large enough for the targets to mean something."""
    return int(np.prod(shape)) >= VERDICT_MIN_SCORES


def _volume_text(shape: tuple[int, ...]) -> str:
    """`"16,384 scores"` below a million, `"16.8M scores"` above."""
    n = int(np.prod(shape))
    return f"{n:,} scores" if n < 10**6 else f"{n / 1e6:.1f}M scores"


def _path_cells(results: dict, kind: str, path: str, text: Callable, missing: str) -> list[str]:
    """One path's `kind` ("times" or "memory_mb") per backend, formatted by `text`."""
    return [text(r.get(kind, {}).get(path), missing) for r in results["backends"].values()]


def _time_text(timing: dict | None, missing: str) -> str:
    if timing is None:
        return missing
    return "error" if "error" in timing else f"{timing['seconds'] * 1e3:.1f}"


def _ratio_text(value: float) -> str:
    return f"{value:.1f}x" if value >= 0.95 else f"{value:.2g}x"


def _memory_text(memory: dict | None, missing: str) -> str:
    if memory is None:
        return missing
    return "error" if "error" in memory else f"{memory['extra_mb']:.0f}"


def _target_text(row: dict, target: float) -> str:
    return (
        f"<= {target:g}x" if row["comparison"].endswith("(lower is better)") else f">= {target:g}x"
    )


def _aligned(rows: list[list[str]]) -> list[str]:
    """Rows as text lines, each column as wide as its widest cell plus two spaces."""
    widths = [max(len(str(r[i])) for r in rows) + 2 for i in range(len(rows[0]))]
    return ["".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
