"""Maps of chemical space on a real (small) lake: maps and separation, figures, the explorer page,
the Ray embed, the command line and the embed benchmark (embeddings and samples: tests/unit/maps/)."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest
from _paths import BENCHMARKS

from crystalspace.maps.build import SEPARATION, build_maps, read_points
from crystalspace.maps.embeddings import MapsError, reference_embedding
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


def test_embed_benchmark_quick(lake, tmp_path):
    import importlib.util

    path = BENCHMARKS / "bench_map_embed.py"
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
