"""``crystalspace mlff``: a user error is one line, no traceback (in-process, through Typer's runner;
every command's bad input as a subprocess: tests/integration/test_cli_bad_input.py)."""

from __future__ import annotations

from typer.testing import CliRunner

SMALL = "pipelines/configs/mlff_small.yaml"


def test_cli_unknown_model_is_one_line() -> None:
    from crystalspace.cli import app

    res = CliRunner().invoke(app, ["mlff", "train", "--model", "gemnet", "--config", SMALL])
    assert res.exit_code == 2
    assert "unknown model 'gemnet'" in res.output
    assert "Traceback" not in res.output
