"""`voxelmetrics bench --engine`: the evaluation job's speed as ratios in one process."""

import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from voxelmetrics.bench.data import synthetic_volume
from voxelmetrics.bench.machine import machine
from voxelmetrics.bench.paths import NUM_BINS, THRESHOLD
from voxelmetrics.bench.timing import progress
from voxelmetrics.cli import DEMO_CRITERIA

ENGINE_CASES = 2
ENGINE_EDGE = 128
ENGINE_CRITERIA = DEMO_CRITERIA  # the demo's: a run as a user starts it
LABEL_CLASSES = 4


def _best(fn: Callable, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _once(fn: Callable) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _engine_files(folder: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    arrays = []
    for i in range(ENGINE_CASES):
        y_true, y_pred = synthetic_volume((ENGINE_EDGE,) * 3 + (4,), seed + i)
        for sub, array in (("pred", y_pred), ("true", y_true.astype(np.uint8))):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
            np.save(os.path.join(folder, sub, f"case{i}.npy"), array)
        arrays.append((y_true.astype(np.uint8), y_pred))
    return arrays


def _cli_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def engine_ratios(label_size: int = 512, seed: int = 0) -> dict:
    """The evaluation job's speed as ratios measured in one process (see `format_engine`).

    Scores: 2 cases of 128^3 x 4 float32 `.npy` + uint8 multi-hot truth, 3 criteria.
    (a) the evaluation phase (`evaluate` on the files, warm, best of 3) over
    `counts_and_histogram` on the same arrays in memory (jitted, warm, best of 3); (b)
    building the report (`summarize`, first call in the process, as a run pays it) over the
    evaluation phase; (c) a whole
    `voxelmetrics evaluate` run over python start + imports + the evaluation phase.
    Label maps: uint8 `label_size`^3, `evaluate` (warm) over a numpy bincount of
    `true * C + pred` on the same arrays.
    """
    import keras

    import voxelmetrics as vm
    from voxelmetrics.evaluate import Options, evaluate
    from voxelmetrics.evaluate.report import summarize

    out = {"backend": keras.backend.backend(), "machine": machine()}
    with tempfile.TemporaryDirectory() as folder:
        arrays = _engine_files(folder, seed)
        pred, true = os.path.join(folder, "pred"), os.path.join(folder, "true")
        kernel = functools.partial(vm.counts_and_histogram, num_bins=NUM_BINS)
        threshold = np.full(4, THRESHOLD, np.float32)

        def in_memory():
            for y_true, y_pred in arrays:
                np.asarray(kernel(y_true, y_pred, threshold)[0])

        progress("engine: in-memory kernel")
        in_memory()
        out["kernel_s"] = _best(in_memory)
        progress("engine: evaluation phase")
        out["evaluate_cold_s"], _ = _once(
            lambda: evaluate(y_true=true, y_pred=pred, options=Options())
        )
        evaluation = evaluate(y_true=true, y_pred=pred, options=Options())
        out["evaluate_s"] = _best(lambda: evaluate(y_true=true, y_pred=pred, options=Options()))
        progress("engine: report")
        out["report_s"], _ = _once(lambda: summarize(evaluation, criteria=ENGINE_CRITERIA))
        out["report_warm_s"], _ = _once(lambda: summarize(evaluation, criteria=ENGINE_CRITERIA))
        progress("engine: whole command")
        out["import_s"] = _cli_seconds(["-c", "import voxelmetrics, keras, jax"])
        criteria = ",".join(ENGINE_CRITERIA)
        argv = ["-m", "voxelmetrics", "evaluate", pred, true, "--quiet", "--criterion", criteria]
        out["cli_s"] = _cli_seconds([*argv, "--out", os.path.join(folder, "out")])
    progress(f"engine: label maps {label_size}^3")
    rng = np.random.default_rng(seed)
    shape = (label_size,) * 3
    y_true = rng.integers(0, LABEL_CLASSES, shape, dtype=np.uint8)
    y_pred = np.where(rng.random(shape, dtype=np.float32) < 0.9, y_true, 0).astype(np.uint8)
    c = LABEL_CLASSES

    def numpy_bincount():
        np.bincount((y_true.astype(np.int64) * c + y_pred).ravel(), minlength=c * c)

    out["label_size"] = label_size
    out["bincount_s"] = _best(numpy_bincount, 2)
    options = Options(num_classes=c)
    out["labels_cold_s"], _ = _once(lambda: evaluate(y_true=y_true, y_pred=y_pred, options=options))
    out["labels_s"] = _best(lambda: evaluate(y_true=y_true, y_pred=y_pred, options=options), 2)
    out["ratios"] = {
        "a_evaluate_over_kernel": out["evaluate_s"] / out["kernel_s"],
        "b_report_over_evaluate": out["report_s"] / out["evaluate_s"],
        "c_cli_over_import_plus_evaluate": out["cli_s"] / (out["import_s"] + out["evaluate_s"]),
        "labels_over_bincount": out["labels_s"] / out["bincount_s"],
    }
    return out


ENGINE_TARGETS = {
    "a_evaluate_over_kernel": ("(a) evaluation phase / in-memory counts_and_histogram", 3.0),
    "b_report_over_evaluate": ("(b) report (summarize) / evaluation phase", 0.1),
    "c_cli_over_import_plus_evaluate": ("(c) whole CLI run / (python+imports+evaluation)", 2.0),
    "labels_over_bincount": ("label maps: evaluate / numpy bincount", 3.0),
}


def format_engine(results: dict) -> str:
    """The engine's seconds and ratios, each with its target."""
    r = results
    lines = [
        f"backend {r['backend']}; {ENGINE_CASES} cases of {ENGINE_EDGE}^3 x 4 float32 .npy, "
        f"3 criteria; label maps {r['label_size']}^3 uint8",
        f"in-memory kernel {r['kernel_s']:.3f} s; evaluate {r['evaluate_s']:.3f} s (first call "
        f"{r['evaluate_cold_s']:.3f} s); report {r['report_s']:.3f} s (again "
        f"{r['report_warm_s']:.3f} s); imports {r['import_s']:.2f} s; whole CLI {r['cli_s']:.2f} s",
        f"label maps: evaluate {r['labels_s']:.3f} s (first call {r['labels_cold_s']:.3f} s); "
        f"numpy bincount {r['bincount_s']:.3f} s",
    ]
    for key, (text, target) in ENGINE_TARGETS.items():
        value = r["ratios"][key]
        lines.append(f"{text:<56} {value:7.2f}  (target < {target:g})")
    return "\n".join(lines)
