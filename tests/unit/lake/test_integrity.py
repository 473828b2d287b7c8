"""The lake never lies, checked in-process: a layout, file or format it cannot trust is refused with
one line, metadata stays out of the data glob, SQL runs confined to the lake, factors are exact and
config paths are relative to their file (whole builds, damage and repair, two builders:
tests/integration/test_lake_integrity.py).

Builds run in-process on the tests' shared Ray session over an 8-element space (a few seconds each).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
from _lakes import ELEMENTS, lake_rows, small_config

from crystalspace.config import ConfigError
from crystalspace.errors import UserError
from crystalspace.lake.duck import connect, run_query, sql_condition
from crystalspace.lake.store import LakeError
from crystalspace.space.build import build_lake, repair_lake
from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space


def test_layout_mismatch_names_the_recorded_shard_rows(lake):
    with pytest.raises(LakeError, match=r"arity 2 in shards of shard_rows=2000, this run asks for 2000000"):
        build_lake(make_space_config(overrides={"arities": "2", "elements": ELEMENTS}), str(lake))


# -- refused, then repaired -------------------------------------------------------------------------


def test_foreign_layout_file_refuses_the_build_and_repair_removes_it(lake, pristine, tmp_path):
    other = tmp_path / "other"
    build_lake(small_config(shard_rows=4000, arities="3"), str(other))
    stray = next(
        p for p in other.glob("arity=3/z1=*/*.parquet") if not (lake / p.relative_to(other)).exists()
    )
    shutil.copy(stray, lake / stray.relative_to(other))
    with pytest.raises(LakeError, match="another shard layout or configuration"):
        build_lake(small_config(), str(lake))
    report = repair_lake(str(lake))
    assert "foreign" in {f.kind for f in report.findings}
    assert lake_rows(lake) == pristine[1]


def test_format_one_lake_is_refused_with_a_migration_line_and_upgraded(lake, pristine):
    manifest = json.loads((lake / "_manifest.json").read_text())
    manifest["format"] = 1
    (lake / "_manifest.json").write_text(json.dumps(manifest))
    for message in (lambda: connect(str(lake)), lambda: build_lake(small_config(), str(lake))):
        with pytest.raises(LakeError, match=r"format-1 lake .* to upgrade it in place"):
            message()
    assert repair_lake(str(lake)).complete
    assert lake_rows(lake) == pristine[1]


# -- the data glob holds data only ---------------------------------------------------------------


def test_natural_queries_over_the_glob_read_exactly_the_rows(lake, pristine):
    n = len(pristine[1])
    glob = f"{lake}/**/*.parquet"
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{glob}'").fetchone() == (n,)
    hive = f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)"
    assert con.execute(hive).fetchone() == (n,)
    assert ds.dataset(str(lake), format="parquet", partitioning="hive").count_rows() == n


# -- SQL confined to the lake --------------------------------------------------------------------------


def test_lake_path_with_a_quote_is_data_not_sql(tmp_path, ray_session):
    lake = tmp_path / "it's a lake'; COPY (SELECT 1) TO 'pwned.csv"
    assert build_lake(small_config(arities="2"), str(lake)).complete
    assert connect(str(lake)).execute("SELECT count(*) FROM compositions").fetchone()[0] > 0
    assert not list(Path.cwd().glob("pwned.csv"))
    assert not list(tmp_path.rglob("pwned.csv"))


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY (SELECT 1) TO '/tmp/crystalspace-pwned.csv'",
        "ATTACH '/tmp/crystalspace-pwned.db'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ],
)
def test_sql_cannot_reach_outside_the_lake(lake, statement):
    con = connect(str(lake))
    with pytest.raises(duckdb.Error):
        con.execute(statement)
    assert not Path("/tmp/crystalspace-pwned.csv").exists()


@pytest.mark.parametrize(
    "where",
    ["arity = 2; DROP TABLE elements", "arity = 2) UNION (SELECT 1", "arity = 2 --", "'unclosed", "", "(("],
)
def test_a_selection_must_be_one_expression(where):
    with pytest.raises(LakeError, match="one SQL expression"):
        sql_condition(where)
    assert sql_condition("category = 'missing' AND (z1 = 3 OR formula LIKE '%;%')")


def test_named_queries_are_names_not_paths(lake):
    con = connect(str(lake))
    for name in ("../../etc/passwd", "/tmp/x", "table2.sql"):
        with pytest.raises(LakeError, match="unknown query"):
            run_query(con, name)
    with pytest.raises(LakeError, match="takes one element"):
        run_query(con, "top_missing", {"anion": "O,S"})
    with pytest.raises(LakeError, match="needs element symbols"):
        run_query(con, "top_missing", {"anion": ""})


# -- exact arithmetic, resources, config paths --------------------------------------------------------


def test_huge_factors_are_exact_or_refused():
    space = Space.load(make_space_config())
    fe259 = space.explain("Fe259O4")
    assert not fe259.known  # its key would spill into Co3O4's bits
    assert "factor 259 exceeds" in fe259.outside[0]
    with pytest.raises(UserError, match="too large"):
        space.explain("Fe18446744073709551616O")


def test_unreachable_address_and_zero_cpus_fail_fast(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=r"no Ray cluster answers at 127\.0\.0\.1:1"):
        build_lake(small_config(), str(tmp_path / "lake"), address="127.0.0.1:1")
    with pytest.raises(UserError, match="at least 1"):
        build_lake(small_config(), str(tmp_path / "lake"), num_cpus=0)
    assert time.perf_counter() - t0 < 15
    assert not (tmp_path / "lake").exists()


def test_paths_in_a_config_file_are_relative_to_it(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "known.csv").write_text("formula\nLiF\n")
    (folder / "space.yaml").write_text("reference: known.csv\nox_set: smact14\n")
    monkeypatch.chdir(tmp_path)
    config = make_space_config(folder / "space.yaml")
    assert config.reference == str(folder / "known.csv")
    assert config.ox_set == "smact14"  # a name, not a path
    assert make_space_config(overrides={"reference": "known.csv"}).reference == "known.csv"  # --set: cwd


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"- 1\n- 2\n", "must be a mapping of settings"),
        (b"just a string\n", "must be a mapping of settings"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "not a YAML text file"),
        (b"limit: [1\n", "not valid YAML"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as exc:
        make_space_config(path)
    assert "\n" not in str(exc.value)
