"""Lake and model registry in object storage: a real S3 endpoint (moto's server) on loopback.

The lake is built to ``s3://…`` by Ray workers, queried by DuckDB (through pyarrow's S3
filesystem), and a model saved to an S3 registry is read back. An endpoint that refuses
connections gives one clear error and leaves nothing behind.
"""

from __future__ import annotations

import http.client
import logging
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crystalspace.lake.duck import connect, run_query
from crystalspace.lake.store import LakeError
from crystalspace.space.build import build_lake, verify_lake
from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space
from crystalspace.storage import join_uri, resolve

BUCKET = "crystalspace-test"
KEY, SECRET = "AKIATESTKEY", "s3cr3t-Must-N0t-Print"
ELEMENTS = "Li,B,O,F,Na,Mg,Al,S,Zn,Fe"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _uri(port: int, path: str) -> str:
    return (
        f"s3://{KEY}:{SECRET}@{BUCKET}/{path}?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    )


@pytest.fixture(scope="module")
def s3_port():
    """moto's S3 server on 127.0.0.1 (loopback only) with one bucket."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield port
    server.stop()


def _config():
    return make_space_config(overrides={"arities": "2,3", "elements": ELEMENTS, "shard_rows": 6000})


def test_lake_on_s3_queried_by_duckdb(s3_port, ray_session):
    lake = _uri(s3_port, "lake")
    report = build_lake(_config(), lake)
    assert report.complete
    assert report.shards_built > 1
    fs, root = resolve(lake)
    keys = [i.path for i in fs.get_file_info(__import__("pyarrow.fs").fs.FileSelector(root, recursive=True))]
    assert f"{root}/_manifest.json" in keys
    assert not [k for k in keys if k.endswith(".tmp")]
    space = Space.load(_config())
    con = connect(lake)
    for arity in (2, 3):
        expected = space.count(arity)
        got = con.execute(
            "SELECT count(*), count(*) FILTER (allowed), count(*) FILTER (known), "
            "count(DISTINCT (z1, z2, z3, n1, n2, n3)) FROM compositions WHERE arity = ?",
            [arity],
        ).fetchone()
        assert got == (expected.compositions, expected.allowed, expected.known, expected.compositions)
    # filters on partition and data columns are pushed into the pyarrow scan and still exact
    zno = con.execute("SELECT category FROM compositions WHERE z1 = 8 AND z2 = 30 AND n1 = 1 AND n2 = 1")
    assert zno.fetchall() == [("standard",)]
    table2 = run_query(con, "table2").fetchall()
    assert [r[1] for r in table2] == [space.count(2).compositions, space.count(3).compositions]
    counts = con.execute("SELECT sum(compositions) FROM composition_counts").fetchone()
    assert counts == (space.count(2).compositions + space.count(3).compositions,)
    # the CLI reads the same object-store lake
    import subprocess
    import sys

    cli = subprocess.run([sys.executable, "-m", "crystalspace.cli", "sql", "SELECT count(*) AS n FROM compositions",
                          "--lake", lake], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert f"{sum(space.count(k).compositions for k in (2, 3))}" in cli.stdout.replace(",", "")
    # a re-run against the object store skips every finished shard
    assert build_lake(_config(), lake).shards_built == 0


def test_registry_entry_round_trips_through_s3(s3_port, tmp_path, monkeypatch):
    import torch

    from crystalspace.registry import RegistryError, load_entry, next_version, save_entry

    monkeypatch.setenv("CRYSTALSPACE_CACHE", str(tmp_path / "cache"))
    root = _uri(s3_port, "registry")
    weights = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([0.5])}
    assert next_version(root, "schnet", "lgps") == "v1"
    save_entry(root, "schnet", "lgps", weights, {"hparams": {"h": 8}}, {"val_f_mae": 0.1}, "# card\n")
    assert next_version(root, "schnet", "lgps") == "v2"
    with pytest.raises(RegistryError, match="exists"):
        save_entry(root, "schnet", "lgps", weights, {}, {}, "", version="v1")
    # a fresh cache: the entry really comes back from the object store
    monkeypatch.setenv("CRYSTALSPACE_CACHE", str(tmp_path / "cache2"))
    entry = load_entry("schnet-lgps-v1", root=root)
    assert entry.config["hparams"] == {"h": 8}
    assert entry.metrics == {"val_f_mae": 0.1}
    state = entry.state_dict()
    assert torch.equal(state["w"], weights["w"])
    assert torch.equal(state["b"], weights["b"])
    assert load_entry(join_uri(root, "schnet-lgps-v1")).name == "schnet-lgps-v1"
    with pytest.raises(RegistryError, match=r"no config\.json"):
        load_entry("schnet-lgps-v9", root=root)


def test_model_folder_with_an_artefact_round_trips_through_s3(s3_port, tmp_path, monkeypatch):
    import torch

    from crystalspace.registry import load_entry, write_entry

    monkeypatch.setenv("CRYSTALSPACE_CACHE", str(tmp_path / "cache"))
    uri = join_uri(_uri(s3_port, "models"), "csp-model")  # a model folder at any URI, not a name
    artefacts = {"lattice.skops": b"the forests"}
    write_entry(uri, {"arch": "distancenet"}, {"w": torch.ones(2)}, {"rmse": 1.0}, "# csp\n", artefacts)
    monkeypatch.setenv("CRYSTALSPACE_CACHE", str(tmp_path / "cache2"))
    entry = load_entry(uri)
    assert entry.config["artefacts"] == ["lattice.skops"]
    assert entry.artefact("lattice.skops").read_bytes() == b"the forests"
    assert torch.equal(entry.state_dict()["w"], torch.ones(2))
    assert SECRET not in str(entry.path)


def test_refusing_endpoint_is_one_clear_error(ray_session, tmp_path):
    lake = _uri(_free_port(), "lake")  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(LakeError, match=r"cannot write the lake at s3://crystalspace-test/lake: ") as exc:
        build_lake(_config(), lake)
    assert "\n" not in str(exc.value)
    assert SECRET not in str(exc.value)
    with pytest.raises(LakeError, match="cannot read the lake at s3://crystalspace-test/lake"):
        connect(lake)
    assert time.perf_counter() - t0 < 60


class FlakyS3:
    """An HTTP proxy in front of moto that answers 503 SlowDown to every write of a shard object
    (a PUT under ``arity=``) once ``healthy_puts`` of them have gone through, until ``heal()``."""

    def __init__(self, upstream: int, healthy_puts: int) -> None:
        self.upstream, self.left, self.failed = upstream, healthy_puts, 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" not in self.headers.get("Transfer-Encoding", ""):
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers
                    pass
                return body

            def _forward(self):
                body = self._body()
                if self.command == "PUT" and "arity" in self.path and proxy._refuse():
                    payload = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                res = conn.getresponse()
                data = res.read()
                self.send_response(res.status)
                for key, value in res.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length = res.getheader("Content-Length") if self.command == "HEAD" else len(data)
                self.send_header("Content-Length", str(length or 0))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server names)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _refuse(self) -> bool:
        with self.lock:
            if self.left is None or self.left > 0:
                self.left = None if self.left is None else self.left - 1
                return False
            self.failed += 1
            return True

    def heal(self) -> None:
        with self.lock:
            self.left = None

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.slow
def test_store_failing_mid_build_loses_nothing_and_never_prints_secrets(s3_port, tmp_path):
    """S3 answers 503 to every shard write after a few: the build ends with one line (no
    credentials in it or in the progress lines), nothing half-written is visible, and a re-run
    once the store recovers completes the lake exactly."""
    flaky = FlakyS3(s3_port, healthy_puts=6)
    lake = _uri(flaky.port, "flaky")
    cmd = [sys.executable, "-m", "crystalspace.cli", "space", "build", "--arity", "2,3", "--elements", ELEMENTS,
           "--set", "shard_rows=6000", "--num-cpus", "2", "--lake", lake]  # fmt: skip
    try:
        failed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert flaky.failed > 0
        assert failed.returncode == 2, failed.stderr[-3000:]
        last = failed.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: cannot write the lake at s3://{BUCKET}/flaky: "), last
        assert "shard(s) failed" in last
        for text in (failed.stdout, failed.stderr):
            assert SECRET not in text
            assert KEY not in text
        fs, root = resolve(lake)
        names = [
            i.path for i in fs.get_file_info(__import__("pyarrow.fs").fs.FileSelector(root, recursive=True))
        ]
        assert not [n for n in names if n.endswith(".tmp")]
        flaky.heal()
        healed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert healed.returncode == 0, healed.stderr[-3000:]
        assert "lake complete" in healed.stdout
        for text in (healed.stdout, healed.stderr):
            assert SECRET not in text
            assert KEY not in text
        space = Space.load(_config())
        got = connect(lake).execute("SELECT count(*), count(DISTINCT formula) FROM compositions").fetchone()
        total = sum(space.count(k).compositions for k in (2, 3))
        assert got == (total, total)
        assert verify_lake(lake).ok
    finally:
        flaky.close()
