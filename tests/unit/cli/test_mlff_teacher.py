"""``crystalspace mlff reference --teacher``: a bad teacher is one line, checked before Ray starts or
anything is written (the run itself: tests/integration/test_mlff_teachers.py)."""

from __future__ import annotations

import importlib.util

from _paths import DATA
from typer.testing import CliRunner

CIF = str(DATA / "mlff_subset" / "Li3PS4_chgnet_relaxed.cif")


def reference(tmp_path, teacher: str):
    from crystalspace.cli import app

    out = tmp_path / "ref"
    res = CliRunner().invoke(app, ["mlff", "reference", CIF, "--out", str(out), "--teacher", teacher])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    assert not out.exists()
    return res.output


def test_unknown_teacher_is_one_line_listing_the_known_ones(tmp_path):
    out = reference(tmp_path, "gpt")
    assert "unknown force provider 'gpt'" in out
    assert "valid: chgnet, pair, sevennet" in out


def test_missing_sevenn_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sevenn" else real(name, *a)
    )
    out = reference(tmp_path, "sevennet")
    assert 'pip install "crystalspace[sevennet]"' in out
