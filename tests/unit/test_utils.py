"""Shared helpers used by several model families."""

import torch

from pipelines.utils import pinned_requirements, torch_threads


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    try:
        with torch_threads(1):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before


def test_pinned_requirements_drop_local_labels_and_keep_missing_unpinned():
    pins = pinned_requirements("torch", "numpy", "no-such-distribution-xyz")
    assert pins[0] == f"torch=={torch.__version__.split('+')[0]}" and "+" not in pins[0]
    assert pins[1].startswith("numpy==")
    assert pins[2] == "no-such-distribution-xyz"
