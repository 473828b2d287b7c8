"""The examples run: every ``examples/*.py`` as a subprocess, and the notebook through nbclient."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from _paths import EXAMPLES

#: What each script must print (regular expressions, one per line of output they must match).
EXPECTED = {
    "mlff_quickstart.py": [
        r"^saved schnet-lgps-v1; validation force MAE per epoch",
        r"^force MAE decreased: True",
        r"^\| schnet-lgps-v1 \| Li3PS4 \| 50 \|",
        r"^ASE energy (-?[0-9.]+) eV = batched \1 eV; forces \(4, 16, 3\)",
    ],
    "md_replicas.py": [
        r"^replicas: 4 ok, 0 stopped",
        r"^frames per replica: \[41\]",
        r"^LGPS 1200 K run 1: <T> \d+ K, D_Li",
    ],
    "csp_reconstruct.py": [
        r"^GA: 4 runs, best distance-matrix mismatch 0\.\d+ A",
        r"^matches rock salt: True",
    ],
    "space_count.py": [r"^\s*2\s+645\s+57\s", r"^\s*4\s+57,345\s+24,185\s"],
    "space_explain.py": [
        r"^ZnO: standard - 2 charge-neutral",
        r"^Zn2O: missing - 1 charge-neutral",
        r"^\s+O-2 Zn\+1: Pauling pass",
        r"^LiZn4SnO8: interesting - no assignment of oxidation states is charge neutral",
    ],
    "gen_images.py": [
        r"^cell image \(32, 32, 32\), basis images \(2, 64, 64, 64\)",
        r"^refine=False: VO2, max cell error \d\.\de-1\d, mean position error 0\.\d\d\d Å",
        r"^refine=True: VO2, max cell error \d\.\de-1\d, mean position error 0\.000 Å",
    ],
    "maps_quickstart.py": [
        r"^arity 2: standard has \d+ compositions \(< 300\); taken whole",
        r"^arity 2 mat2vec pca: kNN accuracy 0\.\d\d in 2-D, 0\.\d\d in mat2vec space \(chance 0\.\d\d\)",
        r"^arity 3 magpie pca: kNN accuracy",
        r"^figures: periodic_table_binary.png, categories_arity2.png, anions_arity2.png, categories_arity3.png",
        r"^explorer: explorer.html, \d+\.\d MB",
    ],
    "space_lake.py": [
        r"^lake complete: 5 shards",
        r"^\s+2 \| 258 \| 11 \|",
        r"^\s+3 \| 1756 \| 217 \|",
        r"^\s+ZnO \| 2 \| standard \| True \| True",
        r"^\s+Zn2O \| 2 \| missing \| True \| False",
    ],
}


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_script(script, tmp_path):
    expected = EXPECTED.get(script.name)
    assert expected, f"add what {script.name} must print to EXPECTED"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)  # an example starts its own embedded Ray
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for pattern in expected:
        assert re.search(pattern, proc.stdout, re.MULTILINE), f"{pattern!r} not in:\n{proc.stdout}"


def test_notebook(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # A "python3" kernel that runs this interpreter, whatever other kernels are installed.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))

    nb = nbformat.read(EXAMPLES / "space_quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    text = "\n".join(
        out.get("text", "") if out.output_type == "stream" else out.get("data", {}).get("text/plain", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert re.search(r"^arity 2:\s+258 compositions,\s+11 allowed", text, re.MULTILINE), text
    assert re.search(r"^ZnO\s+standard\s", text, re.MULTILINE), text
    assert re.search(r"^Zn2O\s+missing\s", text, re.MULTILINE), text
    assert re.search(r"^LiZn4SnO8\s+interesting\s", text, re.MULTILINE), text
    assert "('O-2 Zn+1', 'pass')" in text
