"""Compositional embeddings: the batched matrix product equals ElementEmbeddings' own, and
compositions with an element the embedding lacks are dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crystalspace.maps.embeddings import (
    EMBEDDINGS,
    MapsError,
    composition_embedding,
    load_embedding,
    reference_embedding,
)
from crystalspace.maps.sample import sample_arity
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config

SMALL = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Cl,Zn,Sn,Fe,Cu,Lr"


@pytest.fixture(scope="module")
def lake(tmp_path_factory, ray_session):
    path = str(tmp_path_factory.mktemp("mapslake") / "lake")
    config = make_space_config(overrides={"arities": "2,3", "elements": SMALL, "shard_rows": 50_000})
    assert build_lake(config, path).complete
    return path


def _zn(rows: pd.DataFrame, p: str) -> np.ndarray:
    return rows[[f"{p}{i}" for i in range(1, 5)]].to_numpy()


def test_batched_embedding_equals_compositional_embedding(lake):
    rows = sample_arity(lake, 3, 40, seed=1).rows
    for name in EMBEDDINGS:
        vec, ok = composition_embedding(_zn(rows, "z"), _zn(rows, "n"), load_embedding(name))
        ref = reference_embedding(list(rows["formula"][ok]), name)
        assert vec.shape == (ok.sum(), load_embedding(name).dim)
        np.testing.assert_allclose(vec, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_embedding_drops_compositions_with_unknown_elements():
    z = np.array([[30, 8, 0, 0], [103, 8, 0, 0]])  # ZnO, LrO
    n = np.array([[1, 1, 0, 0], [1, 1, 0, 0]])
    vec, ok = composition_embedding(z, n, load_embedding("magpie"))  # magpie has no Lr
    assert ok.tolist() == [True, False]
    assert vec.shape == (1, 22)
    mean = (load_embedding("magpie").matrix[30] + load_embedding("magpie").matrix[8]) / 2
    np.testing.assert_allclose(vec[0], mean, rtol=1e-6)
    with pytest.raises(MapsError, match="unknown embedding 'word2vec'"):
        load_embedding("word2vec")
