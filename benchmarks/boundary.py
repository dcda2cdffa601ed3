"""Boundary measures on realistic cases: ours (each convention) against MONAI,
surface-distance and MedPy, each run in its own process (time of the boundary phase and
peak RSS), with a timeout.

Phantoms, generated on the fly from a seed:
- `a`: 4 compact ellipsoid classes (multi-hot masks) in a 192^3 cube, the prediction
  shifted by two voxels and one class cut (as `benchmarks/test_surface.py`);
- `b`: a label map of 21 labels (20 ellipsoid organs + background) at 96x160x160, spacing
  1.5x0.8x0.8, some organs cut by the volume's border; the prediction is the truth
  shifted by one voxel with 0.2% of its voxels relabelled at random (stray false positives);
- `c`: TotalSegmentator's size: 117 organs + background, uint8, 512x512x300 at 0.8x0.8x1.5,
  built as `b`.

Usage (prints a markdown table; `--json FILE` keeps the numbers):
    python -m benchmarks.boundary --case b [--tools ours,monai,deepmind,medpy] [--timeout 600]
    python -m benchmarks.boundary --case c --command   # the whole `voxelmetrics evaluate`

`VOXELMETRICS_BENCH_SIZE=small` shrinks every phantom (CI's smoke run,
`benchmarks/test_boundary.py`). Timings on a shared machine are noisy: compare the tools of
one run, not runs.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOLERANCE = 2.0
CASES = {
    # name: (shape, spacing, organs, small shape)
    "a": ((192, 192, 192), (1.0, 1.0, 1.0), 4, (32, 32, 32)),
    "b": ((96, 160, 160), (1.5, 0.8, 0.8), 20, (24, 40, 40)),
    "c": ((512, 512, 300), (0.8, 0.8, 1.5), 117, (64, 64, 40)),
}
STRAYS = 0.002
CONVENTIONS = ("monai", "deepmind", "medpy")
TOOLS = ("ours", "monai", "surface-distance", "medpy")


def case_shape(case: str, small: bool | None = None) -> tuple[int, ...]:
    """The phantom's shape, shrunk if `small` (None: under `VOXELMETRICS_BENCH_SIZE=small`
    or tiny)."""
    shape, _, _, small_shape = CASES[case]
    if small is None:
        small = os.environ.get("VOXELMETRICS_BENCH_SIZE") in ("small", "tiny")
    return small_shape if small else shape


def organs(shape, count: int, rng) -> np.ndarray:
    """uint8 label map: `count` ellipsoids (ids 1..count, later ones drawn over earlier
    ones), a few centred near the border so that the volume cuts them."""
    labels = np.zeros(shape, np.uint8)
    size = np.asarray(shape, float)
    for organ in range(1, count + 1):
        radii = size * rng.uniform(0.03, 0.12, 3) * (1.6 if count <= 20 else 1.0)
        border = organ % 7 == 0
        centre = size * (rng.uniform(0, 1, 3) if border else rng.uniform(0.15, 0.85, 3))
        lo = np.maximum(np.floor(centre - radii), 0).astype(int)
        hi = np.minimum(np.ceil(centre + radii) + 1, size).astype(int)
        if np.any(hi <= lo):
            continue
        grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
        box = labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        box[inside] = organ
    return labels


def stray_prediction(truth: np.ndarray, num_labels: int, rng) -> np.ndarray:
    """The truth shifted by one voxel along the first axis, with `STRAYS` of the voxels
    relabelled at random."""
    pred = np.empty_like(truth)
    pred[1:], pred[0] = truth[:-1], 0
    flat = pred.reshape(-1)
    chosen = rng.choice(flat.size, int(STRAYS * flat.size), replace=False)
    flat[chosen] = rng.integers(0, num_labels, chosen.size)
    return pred


def phantom(case: str, seed: int = 0, small: bool | None = None):
    """`(truth, pred, spacing, classes)`: label maps (`b`, `c`) or multi-hot masks with
    the class axis last (`a`); `classes` are the class ids measured (the organs)."""
    shape, spacing, count, _ = CASES[case]
    shape = case_shape(case, small)
    rng = np.random.default_rng(seed)
    if case == "a":
        from benchmarks.test_surface import ellipsoids

        truth, pred = ellipsoids(shape[0], seed)
        return truth[0], pred[0], spacing, list(range(count))
    truth = organs(shape, count, rng)
    return truth, stray_prediction(truth, count + 1, rng), spacing, list(range(1, count + 1))


# ----------------------------------------------------------------------------- the tools


def run_ours(truth, pred, spacing, classes, convention):
    from voxelmetrics.evaluate.boundary import Side, case_boundary_measures

    if truth.ndim == len(spacing):
        sides = Side(labels=truth), Side(labels=pred)
    else:
        sides = Side(mask=lambda c: truth[..., c]), Side(mask=lambda c: pred[..., c])
    found = case_boundary_measures(
        *sides, classes, spacing=spacing, convention=convention, tolerance=TOLERANCE
    )
    return {
        c: [found[c][k] for k in ("hausdorff", "average_surface_distance", "surface_dice")]
        for c in classes
    }


def _mask(array, spacing, c):
    return array == c if array.ndim == len(spacing) else array[..., c]


def run_monai(truth, pred, spacing, classes, convention):
    """MONAI 1.6's three functions on one-hot `[1, C, *spatial]` (one class at a time for
    more than 20 classes: the one-hot of `c` would not fit)."""
    import warnings

    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    torch.set_num_threads(1)
    groups = [classes] if len(classes) <= 20 else [[c] for c in classes]
    out = {}
    for group in groups:
        t = torch.from_numpy(np.stack([_mask(truth, spacing, c) for c in group])[None])
        p = torch.from_numpy(np.stack([_mask(pred, spacing, c) for c in group])[None])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kw = {"include_background": True, "spacing": list(spacing)}
            hd = compute_hausdorff_distance(p, t, percentile=95, **kw)[0]
            assd = compute_average_surface_distance(p, t, symmetric=True, **kw)[0]
            nsd = compute_surface_dice(p, t, [TOLERANCE] * len(group), **kw)[0]
        for i, c in enumerate(group):
            out[c] = [float(hd[i]), float(assd[i]), float(nsd[i])]
    return out


def run_surface_distance(truth, pred, spacing, classes, convention):
    np.Inf = np.inf  # noqa: NPY201  (surface-distance 0.1 still names np.Inf)
    import surface_distance as sd

    out = {}
    for c in classes:
        d = sd.compute_surface_distances(_mask(truth, spacing, c), _mask(pred, spacing, c), spacing)
        to_pred, to_truth = sd.compute_average_surface_distance(d)
        out[c] = [
            sd.compute_robust_hausdorff(d, 95),
            (to_pred + to_truth) / 2,
            sd.compute_surface_dice_at_tolerance(d, TOLERANCE),
        ]
    return out


def run_medpy(truth, pred, spacing, classes, convention):
    from medpy.metric import binary

    out = {}
    for c in classes:
        t, p = _mask(truth, spacing, c), _mask(pred, spacing, c)
        if not (t.any() and p.any()):  # MedPy raises on an empty mask
            out[c] = [float("nan")] * 3
            continue
        out[c] = [
            binary.hd95(p, t, voxelspacing=spacing),
            binary.assd(p, t, voxelspacing=spacing),
            float("nan"),
        ]
    return out


RUNNERS = {
    "ours": run_ours,
    "monai": run_monai,
    "surface-distance": run_surface_distance,
    "medpy": run_medpy,
}
IMPORTS = {
    "ours": ("voxelmetrics.evaluate.boundary", "voxelmetrics.ops.surface_rules", "scipy.spatial"),
    "monai": ("torch", "monai.metrics"),
    "surface-distance": (),
    "medpy": ("medpy.metric.binary",),
}
# which of our conventions each peer defines
PEER_CONVENTION = {"monai": "monai", "surface-distance": "deepmind", "medpy": "medpy"}


def worker(folder: Path, tool: str, convention: str) -> None:
    """In a fresh process: load the phantom, run one tool, print JSON (seconds, RSS before
    the tool, values)."""
    import resource

    meta = json.loads((folder / "meta.json").read_text())
    truth, pred = np.load(folder / "truth.npy"), np.load(folder / "pred.npy")
    for module in IMPORTS[tool]:  # imports are not the boundary phase
        __import__(module)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    values = RUNNERS[tool](truth, pred, tuple(meta["spacing"]), meta["classes"], convention)
    seconds = time.perf_counter() - start
    values = {str(c): [float(x) for x in v] for c, v in values.items()}
    print(json.dumps({"seconds": seconds, "rss_before": before, "values": values}))


def measure(argv: list[str], timeout: float) -> dict:
    """Run `argv`; its wall time, peak RSS (from wait4) and stdout, or `timed_out`."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.send_signal(signal.SIGKILL)
                os.wait4(proc.pid, 0)
                return {"timed_out": True, "wall": time.perf_counter() - start}
            time.sleep(0.05)
        out.seek(0)
        text = out.read().decode()
    return {
        "timed_out": False,
        "wall": time.perf_counter() - start,
        "peak_rss": usage.ru_maxrss * 1024,
        "status": os.waitstatus_to_exitcode(status),
        "stdout": text,
    }


def save_case(case: str, folder: Path, nifti: bool = False) -> dict:
    truth, pred, spacing, classes = phantom(case)
    np.save(folder / "truth.npy", truth)
    np.save(folder / "pred.npy", pred)
    meta = {"case": case, "shape": list(truth.shape), "spacing": spacing, "classes": classes}
    (folder / "meta.json").write_text(json.dumps(meta))
    if nifti:
        import nibabel as nib

        for name, array in (("truth", truth), ("pred", pred)):
            (folder / name).mkdir(exist_ok=True)
            image = nib.Nifti1Image(array, np.diag([*spacing, 1.0]))
            image.header.set_zooms(spacing)
            nib.save(image, folder / name / "case.nii.gz")
    return meta


def _worker_argv(folder, tool, convention):
    return [sys.executable, "-m", "benchmarks.boundary", "--worker", str(folder), tool, convention]


def agreement(ours: dict, theirs: dict) -> float:
    """The largest relative difference over classes and measures both define."""
    worst = 0.0
    for c, values in theirs.items():
        for a, b in zip(ours[c], values, strict=True):
            if np.isfinite(a) and np.isfinite(b):
                worst = max(worst, abs(a - b) / max(abs(b), 1e-12))
    return worst


def bench(case: str, tools, conventions, timeout: float, command: bool) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meta = save_case(case, folder, nifti=command)
        ours = {}
        for tool in tools:
            for convention in conventions if tool == "ours" else [PEER_CONVENTION[tool]]:
                result = measure(_worker_argv(folder, tool, convention), timeout)
                row = {"case": case, "tool": tool, "convention": convention, **result}
                if not result["timed_out"] and result["status"] == 0:
                    row.update(json.loads(result.pop("stdout").splitlines()[-1]))
                    if tool == "ours":
                        ours[convention] = row["values"]
                    elif convention in ours:
                        row["max_rel_diff"] = agreement(ours[convention], row["values"])
                row.pop("values", None)
                row.pop("stdout", None)
                rows.append(row)
                print(_line(row), flush=True)
        if command:
            n = max(meta["classes"]) + 1
            argv = [
                sys.executable, "-m", "voxelmetrics", "evaluate",
                str(folder / "pred"), str(folder / "truth"), "--num-classes", str(n),
                "--exclude", "0", "--surface", f"hd95,nsd:{TOLERANCE}", "--quiet",
                "--bootstrap", "0", "--out", str(folder / "out"),
            ]  # fmt: skip
            result = measure(argv, timeout)
            row = {
                "case": case,
                "tool": "voxelmetrics evaluate (whole command)",
                "convention": "monai",
                **result,
            }
            row.pop("stdout", None)
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _line(row: dict) -> str:
    if row["timed_out"]:
        minutes = f"not finished in {row['wall'] / 60:.0f} min"
        return f"| {row['case']} | {row['tool']} | {row['convention']} | {minutes} | | |"
    seconds = row.get("seconds", row["wall"])
    diff = row.get("max_rel_diff")
    return (
        f"| {row['case']} | {row['tool']} | {row['convention']} | {seconds:.2f} s | "
        f"{row['peak_rss'] / 2**30:.2f} GB | {'' if diff is None else f'{diff:.1e}'} |"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="b")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--conventions", default=",".join(CONVENTIONS))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per tool run")
    parser.add_argument("--command", action="store_true", help="also time the whole CLI")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(Path(args.worker[0]), args.worker[1], args.worker[2])
        return 0
    print("| case | tool | convention | boundary phase | peak RSS | max rel. diff to ours |")
    print("|---|---|---|---|---|---|")
    rows = bench(
        args.case, args.tools.split(","), args.conventions.split(","), args.timeout, args.command
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
