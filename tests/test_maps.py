"""Maps of chemical space on a real (small) lake: embeddings, samples, maps, figures, Ray embed."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from crystalspace.maps.build import SEPARATION, build_maps, read_points
from crystalspace.maps.embeddings import (
    EMBEDDINGS,
    MapsError,
    composition_embedding,
    load_embedding,
    reference_embedding,
)
from crystalspace.maps.sample import anion_classes, sample_arity
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config

SMALL = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Cl,Zn,Sn,Fe,Cu,Lr"
CLI = [sys.executable, "-m", "crystalspace.cli"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory, ray_session):
    path = str(tmp_path_factory.mktemp("mapslake") / "lake")
    config = make_space_config(overrides={"arities": "2,3", "elements": SMALL, "shard_rows": 50_000})
    assert build_lake(config, path).complete
    return path


@pytest.fixture(scope="module")
def maps(lake, tmp_path_factory):
    out = tmp_path_factory.mktemp("maps") / "maps"
    report = build_maps(
        [lake],
        out,
        arities=(2, 3),
        embeddings=("magpie", "mat2vec"),
        methods=("pca", "umap"),
        per_category=300,
    )
    return out, report


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


@pytest.mark.integration
def test_build_writes_maps_and_separation(maps):
    out, report = maps
    points = read_points(out)
    assert set(points["method"]) == {"pca", "umap"}
    assert set(points["arity"]) == {2, 3}
    sep = pd.read_csv(out / SEPARATION)
    assert len(sep) == 2 * 2 * 2
    assert sep["knn_2d"].between(0, 1).all()
    assert sep["knn_full"].between(0, 1).all()
    # categories are not random noise in the full space: better than always guessing the largest
    assert (sep["knn_full"] > sep["chance"]).all()
    assert any("taken whole" in note for note in report.notes)
    # magpie lacks Lr: those compositions are dropped and counted
    dropped = report.dropped.set_index(["arity", "embedding"])["dropped"]
    assert dropped[(2, "magpie")] > 0
    assert dropped[(2, "mat2vec")] == 0
    n_magpie = len(points[(points.arity == 2) & (points.embedding == "magpie") & (points.method == "pca")])
    assert n_magpie == len(report.samples[2].rows) - dropped[(2, "magpie")]


@pytest.mark.integration
def test_figures_and_explorer(maps):
    from crystalspace.maps.explorer import write_explorer
    from crystalspace.maps.figures import make_figures

    out, _ = maps
    paths = make_figures(out)
    assert [p.name for p in paths] == [
        "periodic_table_binary.png",
        "categories_arity2.png",
        "anions_arity2.png",
        "categories_arity3.png",
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 20_000 for p in paths)
    page = write_explorer(out)
    text = page.read_text()
    assert "Plotly" in text
    assert '"mat2vec/umap"' in text
    assert "cdn" not in text.split("<body>")[1]


@pytest.mark.integration
def test_map_embed_with_ray(lake, tmp_path):
    from crystalspace.maps.embed_lake import embed_selection

    report = embed_selection(
        lake, "arity = 3 AND (allowed OR z3 = 103)", "magpie", tmp_path / "emb", fit_rows=500
    )
    con = duckdb.connect()
    total = con.execute(
        f"SELECT count(*) FROM read_parquet('{lake}/arity=*/z1=*/*.parquet', hive_partitioning=true) "
        "WHERE arity = 3 AND (allowed OR z3 = 103)"
    ).fetchone()[0]
    assert report.rows + report.dropped == total
    assert report.dropped > 0  # Lr compositions
    got = con.execute(f"SELECT formula, x, y, embedding FROM '{tmp_path}/emb/*.parquet'").df()
    assert len(got) == report.rows
    assert got["formula"].is_unique
    assert not got["formula"].str.contains("Lr").any()
    some = got.sample(5, random_state=0)
    ref = reference_embedding(list(some["formula"]), "magpie")
    np.testing.assert_allclose(np.stack(some["embedding"].to_numpy()), ref, rtol=1e-5, atol=1e-3)
    assert got[["x", "y"]].std().min() > 0.1
    with pytest.raises(MapsError, match="matches no compositions"):
        embed_selection(lake, "arity = 4", "magpie", tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["map", "embed", "--embedding", "word2vec"], "unknown embedding 'word2vec'"),
        (["map", "embed", "--where", "arity = 7"], "matches no compositions"),
        (["map", "embed", "--where", "arity = 3 AND"], "invalid selection"),
        (["map", "build", "--arity", "4"], "arity 4 is in none of the lakes"),
        (["map", "build", "--per-category", "0", "--arity", "2"], "Invalid value for '--per-category'"),
    ],
)
def test_cli_bad_input_is_one_line(lake, tmp_path, args, message):
    proc = subprocess.run(
        [*CLI, *args, "--lake", lake, "--out", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.integration
def test_embed_benchmark_quick(lake, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_map_embed.py"
    spec = importlib.util.spec_from_file_location("bench_map_embed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.md"
    argv = ["--quick", "--lake", lake, "--embedding", "magpie", "--loop-rows", "300", "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text()
    assert "| CompositionalEmbedding loop (1 process) | 300 |" in text
    ratio = float(
        text.split("one matrix product (1 process) |")[1].split("|")[2].strip().rstrip("x").replace(",", "")
    )
    assert ratio > 10  # the batched product is far faster than the per-formula loop
