"""Configuration loading: files, overrides, one-line errors, paths relative to the file, job options."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from crystalspace.config import (
    ConfigError,
    apply_overrides,
    job_arguments,
    make_config,
    parse_sets,
    parse_value,
    path_field,
    read_config_file,
)


class Toy(BaseModel):
    """A component's config, as each package owns one."""

    model_config = ConfigDict(extra="forbid")

    data: str = path_field(default="data", names=["builtin"])
    out: list[str] = path_field(default_factory=lambda: ["out"])
    steps: int = Field(default=10, ge=1)
    lr: float = 1e-3
    train: dict[str, object] = Field(default_factory=dict)


def test_file_then_overrides_then_validation(tmp_path: Path) -> None:
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text("data: frames\nout: [a, /abs/b, s3://bucket/c]\nsteps: 5\ntrain: {epochs: 2}\n")
    cfg = make_config(Toy, cfg_file, {"lr": "1e-5", "train.batch": "16", "steps": None})
    assert cfg.data == str(tmp_path / "frames")  # relative to the file, not the working directory
    assert cfg.out == [str(tmp_path / "a"), "/abs/b", "s3://bucket/c"]
    assert cfg.steps == 5  # None: not given
    assert cfg.lr == 1e-5  # YAML 1.2 number, not the string "1e-5"
    assert cfg.train == {"epochs": 2, "batch": 16}  # dotted key: one entry of a mapping
    assert make_config(Toy, None, {"data": "builtin"}).data == "builtin"
    named = tmp_path / "named.yaml"
    named.write_text("data: builtin\n")
    assert make_config(Toy, named).data == "builtin"  # a name, not a path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": "0"}, "steps: Input should be greater than or equal to 1"),
        ({"stpes": "3"}, "stpes: Extra inputs are not permitted"),
        ({"lr": "[1"}, r"--set lr: '\[1' is not a valid value"),
    ],
)
def test_invalid_values_are_one_line(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        make_config(Toy, None, overrides)
    assert "\n" not in str(exc.value)


def test_set_items_and_values() -> None:
    assert parse_sets(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    assert parse_sets(None) == {}
    for bad in (["novalue"], ["=3"]):
        with pytest.raises(ConfigError, match="--set expects key=value"):
            parse_sets(bad)
    assert parse_value("k", "[1, 2]") == [1, 2]
    assert parse_value("k", "{a: 1}") == {"a": 1}
    assert apply_overrides({"a": 1}, {"a": None, "b": "2"}) == {"a": 1, "b": 2}


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        read_config_file(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config_file(empty) == {}


def test_job_arguments_match_the_command_line(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    job_arguments(parser, tmp_path / "default.yaml")
    args = parser.parse_args(["--set", "a=1", "--set", "b=two"])
    assert args.config == tmp_path / "default.yaml"
    assert parse_sets(args.sets) == {"a": "1", "b": "two"}
