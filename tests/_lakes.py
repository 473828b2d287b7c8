"""The small lake both lake-integrity test modules build: an 8-element space, arities 2 and 3.

Its fixtures (``pristine``: one finished build per module with its rows; ``lake``: a fresh copy of it
per test) are registered for every test through ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from crystalspace.lake.duck import connect
from crystalspace.space.build import build_lake
from crystalspace.space.config import SpaceConfig, make_space_config

ELEMENTS = "Li,B,O,F,Na,Mg,S,Zn"
BASE = {"arities": "2,3", "elements": ELEMENTS, "shard_rows": 2000}


def small_config(**overrides: Any) -> SpaceConfig:
    """The small space, with ``overrides`` on top."""
    return make_space_config(overrides={**BASE, **overrides})


def lake_rows(lake: Any) -> list[tuple]:
    """Every row of the lake, sorted, for comparing two lakes exactly."""
    return connect(str(lake)).execute("SELECT * FROM compositions ORDER BY ALL").fetchall()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, ray_session):
    lake = tmp_path_factory.mktemp("pristine") / "lake"
    assert build_lake(small_config(), str(lake)).complete
    return lake, lake_rows(lake)


@pytest.fixture
def lake(pristine, tmp_path):
    """A fresh copy of the finished pristine lake."""
    copy = tmp_path / "lake"
    shutil.copytree(pristine[0], copy)
    return copy
