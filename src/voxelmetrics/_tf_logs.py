"""TensorFlow's C++ start-up log lines, silenced unless the user chose a log level.

Runs on importing voxelmetrics, before anything in the package imports Keras (or TensorFlow).
"""

import os
import sys
from collections.abc import Mapping


def quiet_tensorflow_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment variables to set so that TensorFlow starts without C++ log lines:
    none when the user set `TF_CPP_MIN_LOG_LEVEL` (any value is a choice, and is kept).

    Why two variables, and why not level 3:

    - `TF_CPP_MIN_LOG_LEVEL=2` hides TensorFlow's own INFO and WARNING lines (the CPU
      feature guard, "XLA service ... initialized") and keeps its ERRORs; 3 would hide those
      too.
    - The oneDNN lines ignore it: "oneDNN custom operations are on" is written by absl
      while its logging is not initialised yet ("All log messages before
      absl::InitializeLog() is called are written to STDERR"), at any level, once by each of
      TensorFlow's two shared libraries; then the first graph holding an int32 op logs the
      ERROR "oneDNN supports DT_INT32 only on platforms with AVX-512". `TF_ENABLE_ONEDNN_OPTS=0`
      (unless the user set it) stops both: oneDNN's custom ops are TensorFlow's CPU fast path
      for float convolutions and matmuls, which voxelmetrics' integer counting kernels do not
      use (for int32 oneDNN falls back to Eigen, as the line says).

    Example:
        >>> quiet_tensorflow_defaults({})
        {'TF_CPP_MIN_LOG_LEVEL': '2', 'TF_ENABLE_ONEDNN_OPTS': '0'}
        >>> quiet_tensorflow_defaults({"TF_CPP_MIN_LOG_LEVEL": "0"})
        {}
        >>> quiet_tensorflow_defaults({"TF_ENABLE_ONEDNN_OPTS": "1"})
        {'TF_CPP_MIN_LOG_LEVEL': '2'}
    """
    if "TF_CPP_MIN_LOG_LEVEL" in environ:
        return {}
    defaults = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
    return {key: value for key, value in defaults.items() if key not in environ}


def quiet_tensorflow() -> None:
    """Set `quiet_tensorflow_defaults` in this process's environment (inherited by worker
    processes), if TensorFlow is not imported yet: it reads them once, on loading."""
    if "tensorflow" not in sys.modules:
        os.environ.update(quiet_tensorflow_defaults(os.environ))
