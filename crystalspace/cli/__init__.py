"""The ``crystalspace`` command line: one module per domain, each calling its domain's entry API.

User errors (unknown elements, bad options, a lake of another config) print one line and exit
with status 2; no traceback.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from crystalspace import __version__
from crystalspace.cli import csp, gen, lake, maps, md, mlff, space

app = typer.Typer(
    help="Map inorganic crystal chemical space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(space.app, name="space")
app.add_typer(lake.app, name="lake")
app.add_typer(mlff.app, name="mlff")
app.add_typer(md.app, name="md")
app.add_typer(gen.app, name="gen")
app.add_typer(csp.app, name="csp")
app.add_typer(maps.app, name="map")
app.command("query")(lake.query)
app.command("sql")(lake.sql)


def _version(value: bool) -> None:
    if value:
        print(f"crystalspace {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """crystalspace command line."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
