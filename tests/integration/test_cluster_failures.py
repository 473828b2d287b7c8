"""Failures clusters have, on real Ray: lost nodes (multi-node ``Cluster``), a full disk, a lake
path without write permission. (A killed and re-submitted driver is in test_job_submit.py; an
object store that refuses connections in test_object_store.py.)

The node-loss scenarios live in tests/integration/multinode_jobs.py and run one per process, each on
its own cluster of a 0-CPU head and three 1-CPU worker nodes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _paths import INTEGRATION, ROOT

from crystalspace.lake.duck import connect
from crystalspace.lake.store import read_footer
from crystalspace.space.config import make_space_config


def _scenario(name: str, tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    res = subprocess.run([sys.executable, str(INTEGRATION / "multinode_jobs.py"), name, str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=500)  # fmt: skip
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, res.stdout[-2000:] + res.stderr[-4000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["killed"], "no busy worker node was found to kill"
    assert result["error"] is None, result["error"]
    return result


@pytest.mark.slow
def test_worker_node_dies_during_lake_build(tmp_path):
    r = _scenario("lake", tmp_path)
    assert 0 < r["shards_before"] < r["shards_total"]  # the node died mid-build
    assert r["complete"]
    assert r["shards_after"] == r["shards_total"]
    assert r["rows"] == r["expected"] == r["manifest_totals"]  # exact counts
    assert r["distinct"] == sum(r["expected"])  # no duplicate rows
    assert r["tmp_left"] == 0


@pytest.mark.slow
def test_train_worker_node_dies_and_training_resumes(tmp_path):
    r = _scenario("train", tmp_path)
    first, *restarts = r["starts"]
    assert first["start"] == 0  # the scenario killed the node this first attempt ran on
    assert len(restarts) == 1
    assert restarts[0]["start"] >= 1  # from the last checkpoint, not from scratch
    assert restarts[0]["node"] != r["killed"]
    assert r["final_epoch"] == r["epochs"] - 1
    assert r["weight"] == pytest.approx(3.0, abs=1e-3)  # and it still learned y = 3x + 0.5


@pytest.mark.slow
def test_md_actor_node_dies_and_replicas_resume(tmp_path):
    r = _scenario("md", tmp_path)
    assert r["status"] == ["ok", "ok"]
    assert r["last_step"] == [r["n_steps"], r["n_steps"]]
    assert r["killed"] not in r["nodes"]  # the lost actor finished elsewhere
    assert r["gaps"] == {"0": [10], "1": [10]}  # contiguous frames: no gap, no duplicate
    assert r["first_last"] == {"0": [0, r["n_steps"]], "1": [0, r["n_steps"]]}


def _config():
    return make_space_config(overrides={"arities": "2,3", "elements": "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Zn,Sn,Fe",
                                        "shard_rows": 2000})  # fmt: skip


def _assert_only_whole_files(lake: Path) -> None:
    """Every shard file is complete, no temporary file is left, and a query sees exactly the
    recorded files (files finished after the last record write are adopted by the next run)."""
    import pyarrow.fs as pafs

    assert not list(lake.rglob("*.tmp"))
    files = list(lake.glob("arity=*/z1=*/*.parquet"))
    for path in files:  # a truncated file would fail to read or disagree with its footer counts
        assert pq.read_table(path).num_rows == read_footer(pafs.LocalFileSystem(), str(path))[0].rows
    con = connect(str(lake))
    rows = con.execute("SELECT count(*) FROM compositions").fetchone()[0]
    assert rows == con.execute("SELECT coalesce(sum(rows), 0) FROM composition_counts").fetchone()[0]
    recorded = {r[0] for r in con.execute("SELECT path FROM composition_counts").fetchall()}
    assert recorded <= {str(p.relative_to(lake)) for p in files}


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs mount privileges; skipped without them)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_one_clear_error_and_nothing_half_written(tiny_disk):
    # In its own process: a build that fails mid-stream leaves Ray Data's writer actors alive in the
    # driver until it exits, which would hold the CPUs of the tests' shared Ray session.
    lake = tiny_disk / "lake"
    cmd = [sys.executable, "-m", "crystalspace.cli", "space", "build", "--arity", "2,3",
           "--elements", "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Zn,Sn,Fe", "--set", "shard_rows=2000",
           "--num-cpus", "2", "--lake", str(lake)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert re.match(
        rf"error: cannot write the lake at {re.escape(str(lake))}.*No space left on device", last
    ), last
    assert "Traceback" not in res.stderr
    assert list(lake.glob("arity=*/z1=*/*.parquet")), "the disk should fill part-way, not at once"
    _assert_only_whole_files(lake)


def _no_write_permission() -> list[str]:
    """Command prefix under which a read-only directory really is read-only (root: drop DAC caps)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions are not enforced")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_permission_denied_is_one_clear_error(tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    cmd = [*_no_write_permission(), sys.executable, "-m", "crystalspace.cli", "space", "build",
           "--arity", "2", "--elements", "Li,O,Na,Cl", "--lake", str(parent / "lake")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    finally:
        parent.chmod(0o755)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert res.stderr.startswith(f"error: cannot write the lake at {parent / 'lake'}: [Errno 13]")
    assert "Traceback" not in res.stderr
    assert list(parent.iterdir()) == []
