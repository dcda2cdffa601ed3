"""The few kernels where one backend needs its own path, chosen by `keras.backend.backend()`.

Everything else in voxelmetrics is written once in `keras.ops`.
"""

from voxelmetrics.backends._dispatch import bincount, compile_kernel, is_concrete

__all__ = ["bincount", "compile_kernel", "is_concrete"]
