"""Runtime: Ray targets (an address, a CPU count) are checked in seconds, with one-line errors."""

from __future__ import annotations

import time

import pytest

from crystalspace.errors import UserError
from crystalspace.runtime import check_ray_target


def test_ray_targets_are_checked_in_seconds() -> None:
    t0 = time.perf_counter()
    for address, message in [("127.0.0.1:1", "no Ray cluster answers"), ("nonsense", "expected host:port")]:
        with pytest.raises(UserError, match=message):
            check_ray_target(address)
    with pytest.raises(UserError, match="at least 1"):
        check_ray_target(None, 0)
    check_ray_target("auto")  # Ray itself finds (or refuses) a local cluster
    assert time.perf_counter() - t0 < 10
