"""Peak memory of streamed evaluation is bounded by the chunk budget, not the file size.

Measured on the process: each run is a fresh subprocess reporting its peak resident set
(VmHWM, which also counts file pages mapped into the process). The baseline subprocess
imports, compiles and evaluates a one-row file; the other evaluates a 256 MiB prediction
(float64, as many pipelines save them; plus 32 MiB of labels) with a 16 MiB chunk budget.
The subprocesses run on the backend under test (KERAS_BACKEND is inherited).
"""

import subprocess
import sys

import numpy as np
import pytest

CHUNK_MB = 16
FIXED_OVERHEAD_MB = 64  # allocator arenas of XLA's worker threads, measured once
ROW = (128, 128, 4)

MEASURE = """
import sys
from voxelmetrics.evaluate import Options, evaluate
options = Options(chunk_mb=float(sys.argv[3]), num_bins=256)
ev = evaluate(y_true=sys.argv[2], y_pred=sys.argv[1], options=options)
assert ev.counts.sum() == 4 * int(sys.argv[4]), ev.counts
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(int(peak) // 1024)
"""


def _write(directory, rows: int) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    block = rng.random((16, *ROW))
    pred = np.lib.format.open_memmap(directory / "pred.npy", "w+", np.float64, (rows, *ROW))
    true = np.lib.format.open_memmap(directory / "true.npy", "w+", np.uint8, (rows, *ROW))
    for i in range(0, rows, 16):
        pred[i : i + 16] = block[: rows - i]
        true[i : i + 16] = block[: rows - i] > 0.7
    pred.flush()
    true.flush()
    del pred, true
    return str(directory / "pred.npy"), str(directory / "true.npy")


def _peak_mb(pred: str, true: str, rows: int) -> int:
    voxels = rows * ROW[0] * ROW[1]
    args = [sys.executable, "-c", MEASURE, pred, true, str(CHUNK_MB), str(voxels)]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.slow
def test_peak_memory_is_bounded_by_the_chunk_budget(tmp_path):
    (tmp_path / "small").mkdir()
    (tmp_path / "big").mkdir()
    baseline = _peak_mb(*_write(tmp_path / "small", 1), 1)
    big_rows = 512  # 256 MiB of float64 scores, 32 MiB of uint8 labels
    peak = _peak_mb(*_write(tmp_path / "big", big_rows), big_rows)
    file_mb = big_rows * np.prod(ROW) * (8 + 1) / 2**20
    grown = peak - baseline
    print(f"baseline {baseline} MiB, peak {peak} MiB, grown {grown} MiB, files {file_mb:.0f} MiB")
    assert grown <= CHUNK_MB + FIXED_OVERHEAD_MB < file_mb / 3
