"""The lake build never writes into a folder that is not a lake."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystalspace.lake.store import LakeError
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config

SMALL = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Zn,Sn,Fe"


def _config(**kw):
    return make_space_config(overrides={"arities": "2,3", "elements": SMALL, "shard_rows": 2000, **kw})


def test_refuses_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LakeError, match="not a crystalspace lake"):
        build_lake(_config(), str(tmp_path))
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["notes.txt"]
