"""Worker for test_jax.py: `model.fit` / `evaluate` under `keras.distribution.DataParallel`
over every (virtual) device, and offline counts sharded with `sharded_totals`; prints one
JSON line.

Run as `XLA_FLAGS=--xla_force_host_platform_device_count=4 KERAS_BACKEND=jax
python -m tests.distributed.jax_worker`.
"""

import json
import sys


def main() -> None:
    import jax
    import keras

    from tests.distributed import _case
    from voxelmetrics.backends.distributed import sharded_totals

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    data_parallel = _case.fit_and_evaluate()
    keras.distribution.set_distribution(None)
    offline = sharded_totals(_case.offline_totals, *_case.scores())
    # Every device counts 2**31 - 1: the merged total leaves int32, and must stay exact.
    big = sharded_totals(lambda t: keras.ops.full((2,), 2**31 - 1, "int32"), _case.scores()[0])
    print(
        json.dumps(
            {
                "devices": jax.device_count(),
                "data_parallel": data_parallel,
                "offline": [t.tolist() for t in offline],
                "offline_dtypes": [str(t.dtype) for t in offline],
                "big": big.tolist(),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
