"""The ``crystalspace`` command line: one sub-command group per pipeline.

User errors (unknown elements, bad options, a lake of another config) print one line and exit
with status 2; no traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crystalspace import __version__
from crystalspace.csp.cli import app as csp_app
from crystalspace.errors import user_errors
from crystalspace.gen.cli import app as gen_app
from crystalspace.maps.cli import app as maps_app
from crystalspace.md.cli import app as md_app
from crystalspace.mlff.cli import app as mlff_app

app = typer.Typer(
    help="Map inorganic crystal chemical space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
space_app = typer.Typer(help="Enumerate, filter and label compositions.", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(mlff_app, name="mlff")
app.add_typer(md_app, name="md")
app.add_typer(gen_app, name="gen")
app.add_typer(csp_app, name="csp")
app.add_typer(maps_app, name="map")
console = Console() if sys.stdout.isatty() else Console(width=200)

ArityOpt = Annotated[str | None, typer.Option("--arity", help="arities, e.g. 2,3 (2..4)")]
ElementsOpt = Annotated[str | None, typer.Option("--elements", help="element pool, e.g. Li,Zn,Sn,O")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="largest stoichiometric factor [8]")]
OxOpt = Annotated[str | None, typer.Option("--ox-set", help="smact14|icsd16|icsd24|pymatgen_sp|wiki|FILE")]
RefOpt = Annotated[str | None, typer.Option("--reference", help="known-materials set: mp or FILE")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config (pipelines/configs/)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="config override key=value")]
LakeOpt = Annotated[str, typer.Option("--lake", help="lake path or URI")]


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


def _space_config(
    config: Path | None,
    sets: Sequence[str] | None,
    **values: Any,
) -> Any:
    from crystalspace.config import ConfigError, make_space_config

    overrides: dict[str, Any] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    overrides.update({k: v for k, v in values.items() if v is not None})
    return make_space_config(config, overrides)


def _counts_table(title: str, rows: list[Any], extra: Sequence[str] = ()) -> Table:
    table = Table(title=title)
    for col in (
        "arity",
        "unique combinations",
        "allowed",
        "known",
        "standard",
        "missing",
        "interesting",
        "unlikely",
        *extra,
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*r)
    return table


@space_app.command("count")
@user_errors
def space_count(
    arity: ArityOpt = None,
    elements: ElementsOpt = None,
    limit: LimitOpt = None,
    ox_set: OxOpt = None,
    reference: RefOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    device: Annotated[str, typer.Option(help="cpu (numba) or cuda (torch)")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="CPU threads [all cores]")] = None,
) -> None:
    """Exact counts per arity and category; no rows are written."""
    from crystalspace.space.engine import PUBLISHED_COUNTS, Space
    from crystalspace.space.kernels import set_threads

    cfg = _space_config(
        config, set_, arities=arity, elements=elements, limit=limit, ox_set=ox_set, reference=reference
    )
    set_threads(threads)
    t0 = time.perf_counter()
    space = Space.load(cfg)
    rows = []
    checks = []
    for k in cfg.arities:
        c = space.count(k, device=device)
        if space.is_published_setup:
            ok = (c.compositions, c.allowed) == PUBLISHED_COUNTS[k]
            checks.append(
                f"arity {k} {'matches' if ok else 'DIFFERS FROM'} the published {PUBLISHED_COUNTS[k][1]:,}"
            )
        rows.append(
            [
                str(k),
                f"{c.compositions:,}",
                f"{c.allowed:,}",
                f"{c.known:,}",
                f"{c.standard:,}",
                f"{c.missing:,}",
                f"{c.interesting:,}",
                f"{c.unlikely:,}",
                f"{c.seconds:.2f} s",
            ]
        )
    console.print(
        _counts_table(
            f"composition space ({space.ox.tag}, reference {space.known.tag}, limit {cfg.limit})",
            rows,
            ["time"],
        )
    )
    if checks:
        console.print("Park et al. 2024 (allowed): " + "; ".join(checks))
    console.print(f"counted in {time.perf_counter() - t0:.2f} s ({device})")


@space_app.command("build")
@user_errors
def space_build(
    lake: LakeOpt = "lake",
    arity: ArityOpt = None,
    elements: ElementsOpt = None,
    limit: LimitOpt = None,
    ox_set: OxOpt = None,
    reference: RefOpt = None,
    rows: Annotated[str | None, typer.Option(help="auto|all|allowed (allowed+known rows only)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address [embedded]")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for the embedded Ray")] = None,
    max_shards: Annotated[int | None, typer.Option(help="stop after this many new shards")] = None,
) -> None:
    """Materialise compositions into the Parquet lake (resumes an interrupted build)."""
    from crystalspace.space.build import build_lake

    cfg = _space_config(
        config,
        set_,
        arities=arity,
        elements=elements,
        limit=limit,
        ox_set=ox_set,
        reference=reference,
        rows=rows,
    )
    report = build_lake(cfg, lake, address=address, num_cpus=num_cpus, max_shards=max_shards)
    table_rows = []
    for k, t in sorted(report.totals.items()):
        table_rows.append(
            [
                str(k),
                f"{t['compositions']:,}",
                f"{t['allowed']:,}",
                f"{t['known']:,}",
                f"{t['standard']:,}",
                f"{t['missing']:,}",
                f"{t['interesting']:,}",
                f"{t['unlikely']:,}",
                f"{t['rows']:,}",
            ]
        )
    console.print(_counts_table(f"lake {lake}", table_rows, ["rows stored"]))
    state = "complete" if report.complete else "INCOMPLETE (re-run the same command to resume)"
    console.print(
        f"{report.shards_built} shards built, {report.shards_skipped} already done, "
        f"{report.seconds:.1f} s; lake {state}"
    )


@space_app.command("explain")
@user_errors
def space_explain(
    formula: str,
    limit: LimitOpt = None,
    ox_set: OxOpt = None,
    reference: RefOpt = None,
    elements: ElementsOpt = None,
) -> None:
    """Why a composition is allowed or not."""
    from crystalspace.space.engine import Space

    cfg = _space_config(None, None, limit=limit, ox_set=ox_set, reference=reference, elements=elements)
    e = Space.load(cfg).explain(formula)
    console.print(
        f"[bold]{e.formula}[/bold]: {e.category} ({'allowed' if e.allowed else 'forbidden'}, "
        f"{'known' if e.known else 'not known'} in {e.reference}) — {e.reason}"
    )
    for note in e.outside:
        console.print(f"  outside the configured space: {note}")
    el = Table(show_header=True, box=None)
    for col in ("element", "Z", "n", "Pauling χ", f"oxidation states ({e.ox_set})"):
        el.add_column(col)
    for (sym, z, en, states), n in zip(e.elements, e.counts, strict=True):
        el.add_row(
            sym,
            str(z),
            str(n),
            "—" if en != en else f"{en:.2f}",
            " ".join(f"{q:+d}" for q in states) or "none",
        )
    console.print(el)
    neutral = [a for a in e.assignments if a[1]]
    console.print(f"{len(e.assignments)} assignments, {len(neutral)} charge neutral:")
    for charges, _, ok in neutral[:20]:
        species = " ".join(f"{s}{q:+d}" for (s, *_), q in zip(e.elements, charges, strict=True))
        console.print(f"  {species}: Pauling {'pass' if ok else 'fail'}")
    if len(neutral) > 20:
        console.print(f"  … {len(neutral) - 20} more")


def _print_result(result: Any, max_rows: int) -> None:
    names = [d[0] for d in result.description]
    rows = result.fetchmany(max_rows + 1)
    table = Table()
    for n in names:
        table.add_column(n)
    for r in rows[:max_rows]:
        table.add_row(
            *(
                "" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
                for v in r
            )
        )
    console.print(table)
    if len(rows) > max_rows:
        console.print(f"(first {max_rows} rows shown; use --max-rows)")


@app.command("query")
@user_errors
def query(
    name: Annotated[str | None, typer.Argument(help="query name (file stem in queries/)")] = None,
    lake: LakeOpt = "lake",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=value")] = None,
    max_rows: Annotated[int, typer.Option(help="rows to print")] = 100,
) -> None:
    """Run a named SQL query over the lake (no name: list them)."""
    from crystalspace.lake.duck import connect, query_names, query_params, run_query
    from crystalspace.lake.store import LakeError

    if name is None:
        for q in query_names():
            params = ", ".join(f"{k}={v}" for k, v in query_params(q).items())
            console.print(f"{q}" + (f"  ({params})" if params else ""))
        return
    values = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise LakeError(f"--param expects key=value, got {item!r}")
        values[key.strip()] = value.strip()
    con = connect(lake)
    t0 = time.perf_counter()
    _print_result(run_query(con, name, values), max_rows)
    console.print(f"{name}: {time.perf_counter() - t0:.2f} s")


@app.command("sql")
@user_errors
def sql(
    statement: str,
    lake: LakeOpt = "lake",
    max_rows: Annotated[int, typer.Option(help="rows to print")] = 100,
) -> None:
    """Run any SQL over the lake (views: compositions, composition_counts, elements)."""
    from crystalspace.lake.duck import connect

    _print_result(connect(lake).execute(statement), max_rows)


if __name__ == "__main__":
    app()
