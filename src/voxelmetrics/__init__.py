"""voxelmetrics: exact, fused, in-graph segmentation metrics and thresholds for Keras 3.

Importing voxelmetrics sets `KERAS_BACKEND=jax` when neither the environment variable nor
a keras.json edited by the user names a backend; it never overrides a choice. Keras reads
the backend once, on its first import: import voxelmetrics before keras (or set
KERAS_BACKEND yourself) for this default to apply.

Importing the package imports Keras and registers the metrics, losses and calibration
layers for `.keras` loading; started as the `voxelmetrics` command, it defers that to the
first use, so that `voxelmetrics --help` imports no Keras, JAX or TensorFlow.

Unless `TF_CPP_MIN_LOG_LEVEL` is set, importing voxelmetrics before TensorFlow also sets
`TF_CPP_MIN_LOG_LEVEL=2` and `TF_ENABLE_ONEDNN_OPTS=0` (`_tf_logs.quiet_tensorflow_defaults`):
TensorFlow then starts without its C++ log lines.
"""

import importlib
import os
import sys

from voxelmetrics._backend_default import ensure_default_backend
from voxelmetrics._tf_logs import quiet_tensorflow

ensure_default_backend()
quiet_tensorflow()

__version__ = "0.1.0"


def _exports() -> dict:
    """The public names, from the Keras-facing modules (imported here, once)."""
    calibration, losses, metrics, ops = (
        importlib.import_module(f"voxelmetrics.{m}")
        for m in ("calibration", "losses", "metrics", "ops")
    )
    names = {n: getattr(metrics, n) for n in metrics.__all__}
    names |= {n: getattr(ops, n) for n in ops.__all__}
    names |= {
        "ApplyThresholds": calibration.ApplyThresholds,
        "ThresholdCalibration": calibration.ThresholdCalibration,
        "__version__": __version__,
        "calibration": calibration,
        "losses": losses,
        "metrics": metrics,
    }
    return names


def _load() -> None:
    exports = _exports()
    globals().update(exports, __all__=list(exports))


def __getattr__(name: str):
    """Import the public names on first use when the package was imported lazily."""
    _load()
    if name in globals():
        return globals()[name]
    raise AttributeError(f"module 'voxelmetrics' has no attribute {name!r}")


def _started_as_command() -> bool:
    """True while `python -m voxelmetrics` or the `voxelmetrics` script imports the package."""
    return sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0]) == "voxelmetrics"


if not _started_as_command():
    _load()
