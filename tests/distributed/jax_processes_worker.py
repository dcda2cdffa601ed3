"""Worker for test_jax.py: one of several `jax.distributed` processes (2 CPU devices each)
that evaluates its share of the dataset and merges with the others; prints one JSON line.

Run as `XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax
python -m tests.distributed.jax_processes_worker PORT PROCESS_ID NUM_PROCESSES`.
"""

import json
import sys


def main(port: str, process_id: str, num_processes: str) -> None:
    import jax

    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=int(num_processes),
        process_id=int(process_id),
        initialization_timeout=60,
    )
    import numpy as np

    from tests.distributed import _case
    from voxelmetrics.backends.distributed import (
        all_reduce_metrics,
        process_split,
        sharded_totals,
    )

    share = process_split(
        np.arange(_case.NUM_VOLUMES),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    # Offline: each process reads its share; the mesh spans all processes' devices.
    y_true, y_pred = _case.scores()
    offline = sharded_totals(_case.offline_totals, y_true[share], y_pred[share])
    # Keras: each process evaluates its share on its own devices; the states are summed.
    merged = _case.fit_and_evaluate(share, merge=all_reduce_metrics, fit=False)
    print(
        json.dumps(
            {
                "process_index": jax.process_index(),
                "local_devices": jax.local_device_count(),
                "devices": jax.device_count(),
                "offline": [t.tolist() for t in offline],
                "share": share.tolist(),
                "merged": merged,
            }
        )
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
