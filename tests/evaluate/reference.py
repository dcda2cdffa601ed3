"""The evaluation tests' reference: the suite's one numpy reference (`tests.reference`)."""

from tests.reference import counts_and_histogram, one_hot_truth, probabilities

__all__ = ["counts_and_histogram", "one_hot_truth", "probabilities"]
