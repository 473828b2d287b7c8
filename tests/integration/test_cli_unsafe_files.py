"""Nothing executable from data, through the command line: a model folder holding a crafted pickle is
refused with one line, never unpacked (the library-level refusals: tests/unit/core/test_safe_loading.py)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import torch

CLI = [sys.executable, "-m", "crystalspace.cli"]


class _Payload:
    """Unpacking this object (with ``pickle.load`` or ``torch.load(weights_only=False)``) creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_old_csp_bundle_with_aux_pkl_is_refused_by_the_cli(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = tmp_path / "model"
    model.mkdir()
    with open(model / "aux.pkl", "wb") as f:  # what an old (or crafted) bundle holds
        pickle.dump({"cfg": _Payload(marker)}, f)
    torch.save({}, model / "model.pt")
    (model / "info.json").write_text("{}")
    r = subprocess.run(
        [*CLI, "csp", "predict", "Zr4Al3", "--model-dir", str(model), "--out", str(tmp_path / "cifs")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert "pickle" in lines[0]
    assert "csp train" in lines[0]
    assert "Traceback" not in r.stderr
    assert not marker.exists()
