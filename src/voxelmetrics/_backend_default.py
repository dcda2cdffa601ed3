"""Choose JAX as the Keras backend when the user has chosen none.

Runs before `keras` is imported anywhere in the package; never overrides a choice.
"""

import json
import os
import sys

# What Keras writes to keras.json by itself on its first import: not a choice by the user.
_KERAS_WRITTEN_DEFAULT = {
    "floatx": "float32",
    "epsilon": 1e-07,
    "backend": "tensorflow",
    "image_data_format": "channels_last",
}


def _configured_backend() -> str | None:
    """The backend named by `KERAS_BACKEND` or `keras.json`, or None if neither names one.

    A keras.json identical to the one Keras writes unasked on its first import names no
    choice; edit any field of it (or set KERAS_BACKEND) to choose TensorFlow explicitly.
    """
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(keras_home, "keras.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config == _KERAS_WRITTEN_DEFAULT:
        return None
    return config.get("backend")


def ensure_default_backend() -> None:
    """Set `KERAS_BACKEND=jax` if Keras is not imported yet and no backend is configured."""
    if "keras" not in sys.modules and _configured_backend() is None:
        os.environ["KERAS_BACKEND"] = "jax"
