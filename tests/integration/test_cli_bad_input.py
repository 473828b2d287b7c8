"""Bad input to the command line: one line (or click's usage box), a non-zero exit, nothing written.

Every row runs the real CLI in a subprocess. ``{name}`` in an argument is a file or folder made by
the ``bad`` fixture (or a path under ``tmp_path``); the row's last field names a path under
``tmp_path`` that the failed command must not have created.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _paths import DATA

CIF = str(DATA / "mlff_subset" / "Li4GeS4_chgnet_relaxed.cif")
REFERENCE = str(DATA / "md_reference" / "LGPS.parquet")


def usage(option: str) -> str:
    """The fragment of click's usage error (its box, not our `error: ...` line) for ``option``."""
    return f"Invalid value for '{option}'"


# (args, message fragment, path under tmp_path that must not exist afterwards)
# fmt: off
ROWS: list[tuple[list[str], str, str]] = [
    # ---------------------------------------------------------------------------- space / config
    (["space", "build", "--lake", "{out}", "--num-cpus", "0"], usage("--num-cpus"), "out"),
    (["space", "build", "--lake", "{out}", "--max-shards", "-1"], usage("--max-shards"), "out"),
    (["space", "build", "--lake", "{out}", "--address", "127.0.0.1:1"], "no Ray cluster answers", "out"),
    (["space", "build", "--lake", "{random}"], "is a file, not a lake", "out"),
    (["space", "build", "--lake", "{out}", "--config", "{list_yaml}"], "must be a mapping of settings", "out"),
    (["space", "build", "--lake", "{out}", "--config", "{scalar_yaml}"], "must be a mapping of settings", "out"),
    (["space", "build", "--lake", "{out}", "--config", "{random}"], "not a YAML text file", "out"),
    (["space", "build", "--lake", "{out}", "--reference", "{empty}"], "cannot read it as Parquet or CSV", "out"),
    (["space", "build", "--lake", "{out}", "--reference", "{random}"], "cannot read it as Parquet or CSV", "out"),
    (["space", "build", "--lake", "{out}", "--reference", "{wrong}"], "not a reference table", "out"),
    (["space", "count", "--set", "shard_rows"], "--set expects key=value", "out"),
    (["space", "explain", "Fe18446744073709551616O"], "too large", "out"),
    (["mlff", "train", "--set", "hparams=[1", "--set", "out={out}"], "is not a valid value", "out"),
    # -------------------------------------------------------------------------- lake / query / sql
    (["lake", "verify", "--lake", "{nodata}"], "no crystalspace lake", "out"),
    (["lake", "repair", "--lake", "{nodata}"], "no crystalspace lake", "nodata/_manifest.json"),
    (["query", "top_missing", "--lake", "{lake}", "-p", "anion="], "needs element symbols", "out"),
    (["query", "top_missing", "--lake", "{lake}", "-p", "anion=O,S"], "takes one element", "out"),
    (["query", "../../../etc/passwd", "--lake", "{lake}"], "unknown query", "out"),
    (["query", "table2", "--lake", "{lake}", "--max-rows", "-1"], usage("--max-rows"), "out"),
    (["sql", "", "--lake", "{lake}"], "empty SQL statement", "out"),
    (["sql", "COPY (SELECT 1) TO 'out'", "--lake", "{lake}"], "disabled by configuration", "out"),
    (["sql", "SELECT * FROM read_csv('{text}')", "--lake", "{lake}"], "disabled by configuration", "out"),
    # ------------------------------------------------------------------------------------- md
    (["md", "analyze", "{random}", "--out", "{out}"], "random.parquet: not a Parquet file", "out"),
    (["md", "analyze", "{empty}", "--out", "{out}"], "empty.parquet: empty file", "out"),
    (["md", "analyze", "{truncated}", "--out", "{out}"], "truncated Parquet file", "out"),
    (["md", "analyze", "{nodata}", "--out", "{out}"], "nodata: no trajectory chunks", "out"),
    (["md", "analyze", "{wrong}", "--out", "{out}"], "wrong.parquet: not a trajectory", "out"),
    (["md", "analyze", REFERENCE, "--out", "{out}", "--fit-ps", "5,1"], "--fit-ps needs", "out"),
    (["md", "report", "--reference", "{random}", "--out", "{out}"], "cannot read trajectory", "out"),
    (["md", "report", "--reference", REFERENCE, "--model", "m={truncated}", "--out", "{out}"],
     "truncated.parquet: truncated Parquet file", "out"),
    (["md", "report", "--reference", REFERENCE, "--model", "m=", "--out", "{out}"], "NAME=PATH", "out"),
    (["md", "report", "--reference", REFERENCE, "--rdf-frames", "0", "--out", "{out}"], usage("--rdf-frames"), "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--provider", "nope"],
     "unknown force provider 'nope'", "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--temperatures", "-5"],
     "--temperatures must be > 0", "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--actors", "0"], usage("--actors"), "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--repeats", "0"], usage("--repeats"), "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--ramp-ps", "0"], "--ramp-ps must be > 0", "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--production-ps", "-1"],
     "--production-ps must be > 0", "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--checkpoint-every", "0"], usage("--checkpoint-every"), "out"),
    (["md", "run", "--structure", CIF, "--out", "{out}", "--gpus-per-actor", "-1"], usage("--gpus-per-actor"), "out"),
    (["md", "run", "--structure", "{missing}", "--out", "{out}"], "no such structure file", "out"),
    (["md", "run", "--structure", "{text}", "--out", "{out}"], "cannot parse structure file", "out"),
    # ----------------------------------------------------------------------------------- mlff
    (["mlff", "report", "--reference", "{empty}", "--out", "{out}"], "empty.parquet: empty file", "out"),
    (["mlff", "reference", CIF, "--out", "{out}", "--runs", "0"], usage("--runs"), "out"),
    (["mlff", "reference", CIF, "--out", "{out}", "--temperatures", "0"], "temperatures > 0", "out"),
    (["mlff", "evaluate", "x", "--frames", "0", "--out", "{out}"], usage("--frames"), "out"),
    (["mlff", "tune", "--config", "{random}", "--out", "{out}"], "random.parquet", "out"),
    # ------------------------------------------------------------------------------------ map
    (["map", "figures", "--maps", "{maps_random}"], "points.parquet: not a Parquet file", "maps_random/figures"),
    (["map", "figures", "--maps", "{nodata}"], "missing points.parquet", "nodata/figures"),
    (["map", "explore", "--maps", "{maps_truncated}"], "truncated Parquet file",
     "maps_truncated/explorer.html"),
    (["map", "build", "--lake", "{nodata}", "--out", "{out}", "--per-category", "0"], usage("--per-category"), "out"),
    (["map", "build", "--lake", "{nodata}", "--out", "{out}", "--arity", "9"], "--arity expects", "out"),
    # ------------------------------------------------------------------------------------ gen
    (["gen", "build-data", "--set", "source={text}", "--set", "data_dir={out}"], "text.cif line 1: not JSON lines",
     "out"),
    (["gen", "build-data", "--set", "source={gz_garbage}", "--set", "data_dir={out}"], "not JSON lines", "out"),
    (["gen", "build-data", "--set", "source={random}.gz", "--set", "data_dir={out}"], "not a gzip file", "out"),
    (["gen", "build-data", "--limit", "0", "--set", "data_dir={out}"], usage("--limit"), "out"),
    (["gen", "sample", "--n", "0", "--out", "{out}"], usage("--n"), "out"),
    (["gen", "evaluate", "--set", "model_dir={missing}", "--out", "{out}"], "no trained model", "out"),
    # ------------------------------------------------------------------------------------ csp
    (["csp", "train", "--config", "{list_yaml}", "--model-dir", "{out}"], "must be a mapping of settings", "out"),
    (["csp", "predict", "Li2O", "--top-k", "0", "--model-dir", "{missing}", "--out", "{out}"], usage("--top-k"), "out"),
    (["csp", "predict", "Li2O", "--lattice", "1,2", "--model-dir", "{missing}", "--out", "{out}"],
     "--lattice needs six numbers", "out"),
]
# fmt: on


@pytest.fixture(scope="module")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory, ray_session: object) -> Path:
    """A real one-shard lake for the query and sql rows."""
    from crystalspace.space.build import build_lake
    from crystalspace.space.config import make_space_config

    lake = tmp_path_factory.mktemp("tiny") / "lake"
    build_lake(make_space_config(overrides={"arities": "2", "elements": "Li,O,S,Zn"}), str(lake))
    return lake


@pytest.fixture
def bad(tmp_path: Path, tiny_lake: Path) -> dict[str, str]:
    """Corrupt and odd inputs under ``tmp_path``, by the names the rows use."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {
        "random": "random.parquet",  # random bytes
        "empty": "empty.parquet",
        "wrong": "wrong.parquet",  # valid Parquet, not a trajectory
        "truncated": "truncated.parquet",  # its first half
        "text": "text.cif",  # plain text
        "gz_garbage": "garbage.jsonl.gz",  # gzip of random bytes
        "list_yaml": "list.yaml",  # YAML, but not a mapping
        "scalar_yaml": "scalar.yaml",  # YAML, but a string
    }
    path = {k: tmp_path / v for k, v in files.items()}
    path["random"].write_bytes(os.urandom(2000))
    (tmp_path / "random.parquet.gz").write_bytes(os.urandom(500))  # not gzip at all
    path["empty"].write_bytes(b"")
    pq.write_table(pa.table({"a": list(range(1000))}), path["wrong"])
    whole = path["wrong"].read_bytes()
    path["truncated"].write_bytes(whole[: len(whole) // 2])
    path["text"].write_text("this is plain text, not a structure\n")
    path["gz_garbage"].write_bytes(gzip.compress(b"\xff\xfe" + os.urandom(300)))
    path["list_yaml"].write_text("- 1\n- 2\n")
    path["scalar_yaml"].write_text("just words\n")
    path["lake"] = tiny_lake
    for name in ("nodata", "maps_random", "maps_truncated"):
        path[name] = tmp_path / name
        path[name].mkdir()
    (path["maps_random"] / "points.parquet").write_bytes(path["random"].read_bytes())
    (path["maps_truncated"] / "points.parquet").write_bytes(path["truncated"].read_bytes())
    path["out"] = tmp_path / "out"
    path["missing"] = tmp_path / "missing.cif"
    return {k: str(v) for k, v in path.items()}


@pytest.mark.parametrize(
    ("args", "fragment", "not_created"),
    ROWS,
    ids=[f"{i:02d}-{r[0][0]}-{r[0][1]}" for i, r in enumerate(ROWS)],
)
def test_bad_input(
    args: list[str], fragment: str, not_created: str, bad: dict[str, str], tmp_path: Path
) -> None:
    argv = [a.format(**bad) for a in args]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("CRYSTALSPACE_REGISTRY", None)
    cmd = [sys.executable, "-m", "crystalspace.cli", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=240)
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert "Traceback" not in proc.stdout, proc.stdout[-3000:]
    if fragment.startswith("Invalid value for"):  # click's usage error: a box, no traceback
        assert "Usage:" in err, err
        assert fragment in err, err
        said = next(line.strip(" │|") for line in err.splitlines() if fragment in line)
    else:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err  # exactly one line
        assert lines[0].startswith("error: "), err
        assert fragment in lines[0], err
        said = lines[0]
    print(f"crystalspace {' '.join(args)}  ->  {said}")  # the table of cases: pytest -rP
    assert not (tmp_path / not_created).exists(), f"{not_created} was created"
