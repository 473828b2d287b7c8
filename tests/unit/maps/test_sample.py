"""Samples of a lake for the maps: seeded, small categories taken whole, anion classes by rule."""

from __future__ import annotations

import numpy as np
import pytest

from crystalspace.maps.embeddings import MapsError
from crystalspace.maps.sample import anion_classes, sample_arity
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config

SMALL = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Cl,Zn,Sn,Fe,Cu,Lr"


@pytest.fixture(scope="module")
def lake(tmp_path_factory, ray_session):
    path = str(tmp_path_factory.mktemp("mapslake") / "lake")
    config = make_space_config(overrides={"arities": "2,3", "elements": SMALL, "shard_rows": 50_000})
    assert build_lake(config, path).complete
    return path


def test_sample_is_seeded_and_small_categories_taken_whole(lake):
    a = sample_arity(lake, 2, 300, seed=3)
    b = sample_arity(lake, 2, 300, seed=3)
    c = sample_arity(lake, 2, 300, seed=4)
    assert a.rows["formula"].tolist() == b.rows["formula"].tolist()
    assert a.rows["formula"].tolist() != c.rows["formula"].tolist()
    counts = a.rows["category"].value_counts().to_dict()
    for cat, n in a.available.items():
        assert counts.get(cat, 0) == min(n, 300)
        assert (cat in a.taken_whole) == (0 < n <= 300)
    assert a.taken_whole == ["standard"]  # the small lake has 285 standard binaries
    with pytest.raises(MapsError, match="no arity-4 compositions"):
        sample_arity(lake, 4, 10)


def test_anion_classes_follow_the_documented_rule():
    nan = np.nan
    z = np.array(
        [[8, 30, 0, 0], [16, 48, 0, 0], [11, 17, 0, 0], [7, 31, 0, 0], [8, 17, 83, 0], [26, 30, 0, 0]]
    )
    ox = np.array(
        [
            [-2, 2, nan, nan],
            [-2, 2, nan, nan],
            [1, -1, nan, nan],
            [-3, 3, nan, nan],
            [-2, -1, 3, nan],
            [nan] * 4,
        ]
    )
    assert anion_classes(z, ox) == ["oxide", "chalcogenide", "halide", "pnictide", "oxide", "other"]
    # forbidden (no assignment): the most electronegative element decides
    assert anion_classes(np.array([[8, 9, 0, 0]]), np.full((1, 4), nan)) == ["halide"]
