"""Options shared by the commands, so that one idea has one name everywhere."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console() if sys.stdout.isatty() else Console(width=200)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config (pipelines/configs/)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="config override key=value (YAML value)")]
LakeOpt = Annotated[str, typer.Option("--lake", help="lake path or URI")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray cluster address [embedded]")]
NumCpusOpt = Annotated[int | None, typer.Option("--num-cpus", min=1, help="CPUs for the embedded Ray")]


def overrides(sets: list[str] | None, **values: Any) -> dict[str, Any]:
    """``--set key=value`` items (values read as YAML by the config), then the command's own
    options that were given (not None) on top."""
    from crystalspace.config import parse_sets

    return {**parse_sets(sets), **{k: v for k, v in values.items() if v is not None}}
