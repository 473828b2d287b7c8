"""The lake end to end: Ray Data build, DuckDB counts, resume after a kill, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from crystalspace.lake.duck import connect, run_query
from crystalspace.lake.store import LakeError
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space

SMALL = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Zn,Sn,Fe"
CLI = [sys.executable, "-m", "crystalspace.cli"]


def _config(**kw):
    return make_space_config(overrides={"arities": "2,3", "elements": SMALL, "shard_rows": 2000, **kw})


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory, ray_session):
    lake = str(tmp_path_factory.mktemp("lake") / "small")
    report = build_lake(_config(), lake)
    assert report.complete
    return lake


def _rows(lake: str) -> list[tuple]:
    con = connect(lake)
    return con.execute("SELECT * FROM compositions ORDER BY arity, z1, z2, z3, n1, n2, n3").fetchall()


def test_duckdb_counts_equal_space_count(small_lake):
    space = Space.load(_config())
    con = connect(small_lake)
    for arity in (2, 3):
        expected = space.count(arity)
        got = con.execute(
            "SELECT count(*), count(*) FILTER (allowed), count(*) FILTER (known), "
            "count(*) FILTER (category = 'interesting') FROM compositions WHERE arity = ?",
            [arity],
        ).fetchone()
        assert got == (expected.compositions, expected.allowed, expected.known, expected.interesting)
    table2 = run_query(con, "table2").fetchall()
    assert [r[1] for r in table2] == [space.count(2).compositions, space.count(3).compositions]


def test_named_queries_run(small_lake):
    con = connect(small_lake)
    system = run_query(con, "chemical_system", {"elements": "Li,Zn,O"}).fetchall()
    formulas = {r[0]: r[2] for r in system}
    assert formulas["ZnO"] == "standard"
    assert formulas["Zn2O"] == "missing"
    assert all(set(f) <= set("LiZnO0123456789") for f in formulas)
    freq = run_query(con, "element_frequency").fetchall()
    assert freq
    assert freq[0][2] >= freq[-1][2]
    missing = run_query(con, "top_missing", {"anion": "S", "limit": "5"}).fetchall()
    assert len(missing) == 5
    assert all("S" in r[0] for r in missing)
    with pytest.raises(LakeError):
        run_query(con, "nope")


def test_rerun_is_idempotent_and_other_config_refused(small_lake):
    before = _rows(small_lake)
    report = build_lake(_config(), small_lake)
    assert report.shards_built == 0
    assert report.complete
    assert _rows(small_lake) == before
    with pytest.raises(LakeError, match="another configuration"):
        build_lake(_config(limit=6), small_lake)


@pytest.mark.slow
def test_killed_build_resumes_to_identical_lake(small_lake, tmp_path):
    lake = tmp_path / "killed"
    cmd = [
        *CLI,
        "space",
        "build",
        "--arity",
        "2,3",
        "--elements",
        SMALL,
        "--lake",
        str(lake),
        "--set",
        "shard_rows=2000",
        "--num-cpus",
        "2",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(lake.glob("arity=3/*/*.parquet"))) < 20:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(lake.glob("arity=*/*/*.parquet")))
    total = sum(len(Space.load(_config()).shards(k)) for k in (2, 3))
    assert 0 < done < total, "the kill must land part-way through the build"
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "lake complete" in resumed.stdout
    # quiet on success: progress lines only, no Ray error-level log lines (`… E … core_worker.cc`)
    assert all(line.startswith("building ") for line in resumed.stderr.splitlines()), resumed.stderr
    rows = _rows(str(lake))
    assert rows == _rows(small_lake)
    con = connect(str(lake))
    dup = con.execute(
        "SELECT count(*) - count(DISTINCT (arity, z1, z2, z3, n1, n2, n3)) FROM compositions"
    ).fetchone()
    assert dup == (0,)
    assert not list(lake.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["space", "count", "--elements", "Li,Xx"], "unknown element symbol 'Xx'"),
        (["space", "count", "--arity", "5"], "arity must be in 2..4"),
        (["space", "count", "--limit", "50"], "stoichiometry limit"),
        (["space", "count", "--ox-set", "smact99"], "unknown oxidation set"),
        (["space", "explain", "Li2Qq"], "unknown element 'Qq'"),
        (["space", "explain", "Li2O)("], "malformed formula"),
        (["query", "table2", "--lake", "/nonexistent/lake"], "no crystalspace lake"),
    ],
)
def test_cli_user_errors_are_one_line(args, message):
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_oxidation_file_writes_nothing(tmp_path):
    bad = tmp_path / "ox.txt"
    bad.write_text("Li +1\nO minus-two\n")
    lake = tmp_path / "lake"
    out = subprocess.run(
        [*CLI, "space", "build", "--elements", "Li,O", "--ox-set", str(bad), "--lake", str(lake)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "must be integers" in out.stderr
    assert not lake.exists()


@pytest.mark.slow
def test_full_binary_ternary_lake_matches_published_counts(tmp_path, ray_session):
    """Acceptance: the whole binary + ternary lake, counted back through DuckDB."""
    config = make_space_config(overrides={"arities": "2,3"})
    lake = str(tmp_path / "full")
    assert build_lake(config, lake).complete
    con = connect(lake)
    got = con.execute(
        "SELECT arity, count(*), count(*) FILTER (allowed), count(*) FILTER (known) "
        "FROM compositions GROUP BY arity ORDER BY arity"
    ).fetchall()
    space = Space.load(config)
    expected = [
        (k, space.count(k).compositions, space.count(k).allowed, space.count(k).known) for k in (2, 3)
    ]
    assert got == expected
    assert [row[:3] for row in got] == [(2, 225_879, 13_464), (3, 77_637_589, 10_779_441)]
