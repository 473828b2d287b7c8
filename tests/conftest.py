"""Shared fixtures: one Ray session for the whole test run, the Li3PS4 test cell."""

from __future__ import annotations

import os

import pytest
from _paths import DATA

pytest_plugins = ["_lakes"]  # the small lake fixtures of the lake-integrity tests

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray cluster (2 CPUs, 1 GB object store) for every test that needs it."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=1_000_000_000,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def li3ps4():
    """The CHGNet-relaxed Li3PS4 cell (16 atoms) of tests/data/mlff_subset, read once per module."""
    from ase.io import read

    return read(DATA / "mlff_subset" / "Li3PS4_chgnet_relaxed.cif")


def pytest_collection_modifyitems(config, items):
    """Skip gpu-marked tests cleanly when no CUDA device is present."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
