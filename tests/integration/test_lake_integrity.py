"""The lake never lies, over whole builds: no setting makes it hold a composition twice, damaged
files are refused by queries, found and rebuilt, a file written but never recorded is adopted, and a
second builder is refused (the in-process checks: tests/unit/lake/test_integrity.py).

Builds run in-process on the tests' shared Ray session over an 8-element space (a few seconds
each); the CLI is run as a subprocess where its own output is under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _lakes import BASE, ELEMENTS, lake_rows, small_config

from crystalspace.lake.duck import connect
from crystalspace.lake.store import LakeError
from crystalspace.space.build import build_lake, repair_lake, verify_lake
from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space

CLI = [sys.executable, "-m", "crystalspace.cli"]


def _assert_exact(lake, config) -> None:
    """Every composition once, the totals exact, and ``lake verify`` finds the lake sound."""
    con = connect(str(lake))
    space = Space.load(config)
    for arity in config.arities:
        n, distinct = con.execute(
            "SELECT count(*), count(DISTINCT formula) FROM compositions WHERE arity = ?", [arity]
        ).fetchone()
        expected = space.count(arity)
        stored = (
            expected.compositions
            if config.rows_for(arity) == "all"
            else expected.allowed + expected.interesting
        )
        assert n == distinct == stored
    report = verify_lake(str(lake))
    assert report.ok, report.findings


def _tree(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}


# -- identity: every option either refused or duplicate-free ----------------------------------------


def _reference_file(tmp_path: Path) -> str:
    path = tmp_path / "mine.csv"
    path.write_text("formula\nLiF\nZnO\nLi2ZnO2\nMgAl2O4\n")
    return str(path)


VARIANTS = [
    # (what changes, overrides, refused?)
    ("same settings", {}, False),
    ("a larger shard_rows (the issue's full-config-then-plain run)", {"shard_rows": 4000}, True),
    ("a smaller shard_rows", {"shard_rows": 1000}, True),
    ("only arity 2 again", {"arities": "2"}, False),
    ("a new arity in its own layout", {"arities": "4", "shard_rows": 100_000}, False),
    ("a new arity beside the held ones", {"arities": "2,3,4"}, False),
    ("another factor limit", {"limit": 6}, True),
    ("another element pool", {"elements": "Li,B,O,F"}, True),
    ("another oxidation set", {"ox_set": "icsd16"}, True),
    ("another reference set", {"reference": "FILE"}, True),
    ("another rows mode", {"rows": "allowed"}, True),
    ("a partial new arity", {"arities": "4", "shard_rows": 100_000, "max_shards": 1}, False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("what", "overrides", "refused"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_setting_is_refused_or_duplicate_free(lake, tmp_path, what, overrides, refused):
    overrides = dict(overrides)
    if overrides.get("reference") == "FILE":
        overrides["reference"] = _reference_file(tmp_path)
    max_shards = overrides.pop("max_shards", None)
    before = _tree(lake)
    config = small_config(**overrides)
    if refused:
        with pytest.raises(LakeError) as exc:
            build_lake(config, str(lake), max_shards=max_shards)
        assert "\n" not in str(exc.value)
        assert _tree(lake).keys() - {"_build.lock"} == before.keys() - {"_build.lock"}  # nothing written
        return
    report = build_lake(config, str(lake), max_shards=max_shards)
    held = sorted({*BASE["arities"].split(","), *str(overrides.get("arities", "2")).split(",")})
    whole = make_space_config(overrides={**BASE, **overrides, "arities": ",".join(held)})
    con = connect(str(lake))
    dup = con.execute("SELECT count(*) - count(DISTINCT formula) FROM compositions").fetchone()
    assert dup == (0,)
    if report.complete:
        _assert_exact(lake, whole)
    else:  # a partial build: what is recorded is exactly what the files hold
        rec = con.execute("SELECT sum(rows) FROM composition_counts").fetchone()[0]
        assert con.execute("SELECT count(*) FROM compositions").fetchone()[0] == rec


# -- verify, then trust -------------------------------------------------------------------------------


def _a_shard(lake: Path) -> Path:
    return sorted(lake.glob("arity=3/z1=8/*.parquet"))[0]


def _truncate(lake: Path) -> str:
    path = _a_shard(lake)
    path.write_bytes(path.read_bytes()[:200])
    return "truncated"


def _delete(lake: Path) -> str:
    _a_shard(lake).unlink()
    return "missing"


def _alter(lake: Path) -> str:
    path = _a_shard(lake)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # same size, one byte of a data page changed
    path.write_bytes(bytes(data))
    return "altered"


def _corrupt_record(lake: Path) -> str:
    (lake / "_shards.pq").write_bytes(b"not parquet at all")
    return "record"


def _delete_record(lake: Path) -> str:
    (lake / "_shards.pq").unlink()
    return "record"


def _delete_manifest(lake: Path) -> str:
    (lake / "_manifest.json").unlink()
    return "manifest"


def _corrupt_manifest(lake: Path) -> str:
    (lake / "_manifest.json").write_text('{"config_ha')
    return "manifest"


DAMAGE = {
    "truncated shard": _truncate,
    "deleted shard": _delete,
    "altered shard": _alter,
    "corrupt record": _corrupt_record,
    "deleted record": _delete_record,
    "deleted manifest": _delete_manifest,
    "corrupt manifest": _corrupt_manifest,
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damage_is_refused_by_queries_found_and_repaired(lake, pristine, damage):
    kind = DAMAGE[damage](lake)
    if kind != "altered":  # queries refuse with one line pointing to repair (a same-size edit
        # needs the checksums of `lake verify`)
        with pytest.raises(LakeError, match="crystalspace lake repair") as exc:
            connect(str(lake))
        assert "\n" not in str(exc.value)
    if kind not in ("record", "manifest"):
        report = verify_lake(str(lake))
        assert not report.ok
        assert [f.kind for f in report.findings if f.kind != "adopted"] == [kind]
    repaired = repair_lake(str(lake))
    assert repaired.complete
    assert kind in {f.kind for f in repaired.findings}
    assert repaired.shards_built == (1 if kind in ("truncated", "missing", "altered") else 0)
    assert lake_rows(lake) == pristine[1]
    _assert_exact(lake, small_config())


def test_rerun_rebuilds_a_truncated_shard_and_a_lost_record(lake, pristine):
    _truncate(lake)
    _corrupt_record(lake)
    (lake / "arity=2/z1=3/part-000000000000.parquet.tmp").write_bytes(b"half")
    report = build_lake(small_config(), str(lake))
    kinds = {f.kind for f in report.findings}
    assert kinds == {"record", "temporary", "adopted", "unreadable"}  # no record: every file read back
    assert report.shards_built == 1
    assert report.complete
    assert lake_rows(lake) == pristine[1]
    assert not list(lake.rglob("*.tmp"))


def test_unrecorded_shard_is_invisible_until_adopted(lake, pristine):
    """A build killed between writing a file and recording it: queries see only recorded files
    (counts and rows agree), and the next run reads the file back and adopts it."""
    import pyarrow.parquet as pq

    record = pq.read_table(lake / "_shards.pq")
    dropped = record.slice(0, 1)
    pq.write_table(record.slice(1), lake / "_shards.pq", write_page_checksum=True)
    con = connect(str(lake))
    rows = con.execute("SELECT count(*) FROM compositions").fetchone()[0]
    assert rows == con.execute("SELECT sum(rows) FROM composition_counts").fetchone()[0]
    assert rows == len(pristine[1]) - dropped["rows"][0].as_py()
    report = build_lake(small_config(), str(lake))
    assert [f.kind for f in report.findings] == ["adopted"]
    assert report.shards_built == 0
    assert lake_rows(lake) == pristine[1]


# -- one writer at a time -----------------------------------------------------------------------------


def _cli_build(lake: Path, *extra: str) -> list[str]:
    return [*CLI, "space", "build", "--arity", "2,3", "--elements", ELEMENTS, "--lake", str(lake),
            "--set", "shard_rows=1000", "--num-cpus", "1", *extra]  # fmt: skip


@pytest.mark.slow
def test_second_builder_is_refused_and_a_killed_builder_leaves_no_lock(tmp_path, pristine):
    lake = tmp_path / "busy"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    first = subprocess.Popen(_cli_build(lake), env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (lake / "_manifest.json").exists():
        time.sleep(0.1)
    second = subprocess.run(_cli_build(lake), env=env, capture_output=True, text=True, timeout=120)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert second.returncode == 2
    assert second.stderr.strip().startswith(f"error: {lake} is being written by another build (process ")
    assert len(second.stderr.strip().splitlines()) == 1
    again = subprocess.run(_cli_build(lake), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "lake complete" in again.stdout
    _assert_exact(lake, small_config(shard_rows=1000))
