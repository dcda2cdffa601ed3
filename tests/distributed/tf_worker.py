"""Worker for test_tensorflow.py: `model.fit` / `evaluate` under
`tf.distribute.MirroredStrategy` over two logical CPU devices; prints one JSON line.

Run as `KERAS_BACKEND=tensorflow python -m tests.distributed.tf_worker`.
"""

import json
import sys


def main() -> None:
    import tensorflow as tf

    from tests.distributed import _case

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices()])
    mirrored = _case.fit_and_evaluate(scope=strategy.scope())
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "mirrored": mirrored}))


if __name__ == "__main__":
    sys.exit(main())
