"""`ray job submit` against a real local head (`ray start --head` with the job server).

One head serves both tests' jobs: an uninterrupted lake build checked with DuckDB, and a build
whose driver is killed (SIGKILL) mid-way and then re-submitted: finished shards are skipped and
the lake is identical to the uninterrupted one. The head is stopped by killing the process
group this test started (never `ray stop`, which would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from _paths import ROOT

from crystalspace.lake.duck import connect
from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space

BIN = Path(sys.executable).parent
ELEMENTS = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Zn,Sn,Fe"
SETS = [f"elements={ELEMENTS}", "shard_rows=2000"]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PATH=f"{BIN}:{env['PATH']}")
    env.pop("PYTHONPATH", None)  # the job must get crystalspace from its uploaded working dir
    return env


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A Ray head with the dashboard's job server on 127.0.0.1; yields its job API address."""
    pytest.importorskip("ray.dashboard.modules.job")
    port, dash = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("head") / "head.log"
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           "--node-ip-address=127.0.0.1", "--object-store-memory=500000000", "--disable-usage-stats",
           # every fixed default port on free ones: another Ray on the machine (the tests' own session)
           # already holds e.g. the agent's 52365, and the head's agent would then never register
           *(f"--{opt}={_free_port()}" for opt in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                   "metrics-export-port", "ray-client-server-port",
                                                   "runtime-env-agent-port"))]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        _wait_for_job_server(address, proc, log)
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        time.sleep(1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left in the group


def _wait_for_job_server(address: str, proc: subprocess.Popen, log: Path) -> None:
    import urllib.request

    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"job server did not come up: {log.read_text()[-2000:]}")


def _submit(address: str, lake: Path, *extra: str) -> subprocess.CompletedProcess | subprocess.Popen:
    """`ray job submit --working-dir <checkout>` of the lake build, with the runtime_env excludes."""
    env_file = yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())
    runtime_env = {"excludes": env_file["excludes"], "env_vars": env_file["env_vars"]}
    sets = [a for s in SETS for a in ("--set", s)]
    cmd = [str(BIN / "ray"), "job", "submit", f"--address={address}", f"--working-dir={ROOT}",
           f"--runtime-env-json={json.dumps(runtime_env)}", *extra, "--",
           "python", "pipelines/space_build.py", "--config", "pipelines/configs/space_small.yaml",
           "--lake", str(lake), *sets]  # fmt: skip
    deadline = time.time() + 180
    while True:  # the job server answers before the node's agent has registered (slow on a busy box)
        res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
        if "No available agent to submit job" not in res.stderr or time.time() > deadline:
            return res
        time.sleep(3)


def _config():
    return make_space_config(overrides=dict(s.split("=", 1) for s in SETS))


def _rows(lake: Path) -> list[tuple]:
    return connect(str(lake)).execute("SELECT * FROM compositions ORDER BY ALL").fetchall()


@pytest.fixture(scope="module")
def submitted_lake(head, tmp_path_factory):
    lake = tmp_path_factory.mktemp("jobs") / "lake"
    res = _submit(head, lake)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return lake, res.stdout


def test_job_submit_builds_the_lake(submitted_lake):
    lake, stdout = submitted_lake
    assert "succeeded" in stdout
    assert "complete=True" in stdout
    space = Space.load(_config())
    con = connect(str(lake))
    for arity in (2, 3):
        expected = space.count(arity)
        got = con.execute(
            "SELECT count(*), count(*) FILTER (allowed), count(*) FILTER (known) FROM compositions "
            "WHERE arity = ?",
            [arity],
        ).fetchone()
        assert got == (expected.compositions, expected.allowed, expected.known)


def test_killed_driver_resubmitted_skips_finished_shards(head, submitted_lake, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    full, _ = submitted_lake
    lake = tmp_path / "lake"
    client = JobSubmissionClient(head)
    res = _submit(head, lake, "--no-wait", "--submission-id=killed-build")
    assert res.returncode == 0, res.stderr[-2000:]
    deadline = time.time() + 240
    while time.time() < deadline and len(list(lake.glob("arity=3/*/*.parquet"))) < 15:
        time.sleep(0.1)
    info = client.get_job_info("killed-build")
    assert info.driver_info is not None, f"the job's driver never started ({info.status}: {info.message})"
    pid = info.driver_info.pid
    os.kill(int(pid), signal.SIGKILL)  # the job's driver process, on this machine
    while client.get_job_status("killed-build") not in {JobStatus.FAILED, JobStatus.STOPPED}:
        time.sleep(0.5)
    done = len(list(lake.glob("arity=*/*/*.parquet")))
    total = sum(len(Space.load(_config()).shards(k)) for k in (2, 3))
    assert 0 < done < total, "the kill must land part-way through the build"
    again = _submit(head, lake)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    line = next(s for s in again.stdout.splitlines() if "shards built" in s)
    built, skipped = int(line.split()[0]), int(line.split(",")[1].split()[0])
    assert skipped >= done - 2  # a shard being renamed at the kill may or may not have made it
    assert built + skipped == total
    assert _rows(lake) == _rows(full)
    assert not list(lake.rglob("*.tmp"))
