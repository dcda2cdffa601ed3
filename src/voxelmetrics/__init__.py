"""voxelmetrics: exact, fused, in-graph segmentation metrics and thresholds for Keras 3.

Importing voxelmetrics sets `KERAS_BACKEND=jax` when neither the environment variable nor
a keras.json edited by the user names a backend; it never overrides a choice. Keras reads
the backend once, on its first import: import voxelmetrics before keras (or set
KERAS_BACKEND yourself) for this default to apply.
"""

from voxelmetrics._backend_default import ensure_default_backend

ensure_default_backend()

from voxelmetrics import calibration, losses, metrics  # noqa: E402
from voxelmetrics.calibration import ApplyThresholds, ThresholdCalibration  # noqa: E402
from voxelmetrics.metrics import *  # noqa: E402, F403
from voxelmetrics.metrics import __all__ as _metrics_all  # noqa: E402
from voxelmetrics.ops import *  # noqa: E402, F403
from voxelmetrics.ops import __all__ as _ops_all  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    *_ops_all,
    *_metrics_all,
    "ApplyThresholds",
    "ThresholdCalibration",
    "__version__",
    "calibration",
    "losses",
    "metrics",
]
