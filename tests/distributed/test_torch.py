"""PyTorch: two `torch.distributed` (gloo) processes, each on its share of the volumes,
merged by `all_reduce_metrics`, give the very counts of one process (integers compared
exactly)."""

from tests.distributed.conftest import (
    assert_same_numbers,
    check_reference,
    free_port,
    only_under,
    run_workers,
)

pytestmark = only_under("torch")


def test_all_reduce_metrics_over_two_processes_matches_one_process(one_device):
    check_reference(one_device)
    port = str(free_port())
    argvs = [[port, str(rank), "2"] for rank in range(2)]
    ranks = run_workers("tests.distributed.torch_worker", argvs, {"KERAS_BACKEND": "torch"})
    assert sorted(r["share"] for r in ranks) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    for r in ranks:
        assert_same_numbers(one_device, r["merged"])
