"""Worker for test_torch.py: one of several `torch.distributed` (gloo) processes that fits
and evaluates on its share of the volumes, then sums the metric states with
`all_reduce_metrics`; prints one JSON line.

Run as `KERAS_BACKEND=torch python -m tests.distributed.torch_worker PORT RANK WORLD_SIZE`.
"""

import json
import sys


def main(port: str, rank: str, world_size: str) -> None:
    import numpy as np
    import torch.distributed as dist

    from tests.distributed import _case
    from voxelmetrics.backends.distributed import all_reduce_metrics, process_split

    rank, world_size = int(rank), int(world_size)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    share = process_split(
        np.arange(_case.NUM_VOLUMES), process_index=rank, process_count=world_size
    )
    merged = _case.fit_and_evaluate(share, merge=all_reduce_metrics)
    dist.destroy_process_group()
    print(json.dumps({"rank": rank, "share": share.tolist(), "merged": merged}))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
