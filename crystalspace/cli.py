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
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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
lake_app = typer.Typer(
    help="Check a lake's files against its record; repair what is damaged.", no_args_is_help=True
)
app.add_typer(space_app, name="space")
app.add_typer(lake_app, name="lake")
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
    from crystalspace.config import parse_sets
    from crystalspace.space.config import make_space_config

    overrides: dict[str, Any] = dict(parse_sets(list(sets or [])))
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
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for the embedded Ray", min=1)] = None,
    max_shards: Annotated[int | None, typer.Option(help="stop after this many new shards", min=1)] = None,
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
    _print_build(report)


def _print_build(report: Any) -> None:
    """What a build or repair found and fixed, its totals, and whether the lake is complete."""
    _print_findings(report.findings, fixed=True)
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
    console.print(_counts_table(f"lake {report.lake}", table_rows, ["rows stored"]))
    state = "complete" if report.complete else "INCOMPLETE (re-run the same command to resume)"
    console.print(
        f"{report.shards_built} shards built, {report.shards_skipped} already done, "
        f"{report.seconds:.1f} s; lake {state}"
    )


_FINDINGS = {
    "missing": "shard file missing",
    "truncated": "shard file of the wrong size (truncated or replaced)",
    "altered": "shard file altered (SHA-256 differs from the record)",
    "unreadable": "shard file unreadable",
    "outdated": "format-1 shard file",
    "foreign": "file of another layout or configuration",
    "temporary": "temporary file of a killed writer",
    "legacy": "format-1 counts file",
    "adopted": "unrecorded shard file, sound",
    "manifest": "manifest",
    "record": "shard record",
}
_FIXES = {"adopted": "recorded", "manifest": "rebuilt", "record": "rebuilt", "foreign": "removed",
          "temporary": "removed", "legacy": "removed"}  # fmt: skip


def _print_findings(findings: list[Any], fixed: bool) -> None:
    """One line per kind of finding: how many, an example, and (``fixed``) what was done."""
    by_kind: dict[str, list[Any]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    for kind, items in by_kind.items():
        action = _FIXES.get(kind, "rebuilt") if fixed else "found"
        example = f"{items[0].path}: {items[0].detail}"
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        console.print(escape(f"{_FINDINGS.get(kind, kind)}: {len(items)} {action} — {example}{more}"))


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


@lake_app.command("verify")
@user_errors
def lake_verify(lake: LakeOpt = "lake") -> None:
    """Check every shard file (size, SHA-256) against the record and every complete arity's totals
    against the exact counts of the lake's configuration; change nothing (exit 1 if not sound)."""
    from crystalspace.space.build import verify_lake

    report = verify_lake(lake)
    _print_findings(report.findings, fixed=False)
    for arity, a in sorted(report.arities.items()):
        totals = ", ".join(f"{v:,} {k}" for k, v in a["totals"].items())
        verdict = ("match" if a["counts_match"] else "DIFFER FROM") + " the exact counts"
        console.print(
            f"arity {arity}: {a['shards_done']}/{a['shards_total']} shards; {totals}; "
            + (verdict if a["complete"] else "INCOMPLETE")
        )
    if report.ok:
        console.print(f"lake {report.lake}: sound")
        return
    console.print(f"lake {report.lake}: NOT sound; run `crystalspace lake repair --lake {report.lake}`")
    raise typer.Exit(1)


@lake_app.command("repair")
@user_errors
def lake_repair(
    lake: LakeOpt = "lake",
    address: Annotated[str | None, typer.Option(help="Ray cluster address [embedded]")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for the embedded Ray", min=1)] = None,
) -> None:
    """Check every file in full, remove what is damaged or does not belong, rebuild it from the
    lake's own configuration, and rewrite the record and manifest (upgrades format-1 lakes)."""
    from crystalspace.space.build import repair_lake

    _print_build(repair_lake(lake, address=address, num_cpus=num_cpus))


def _print_result(result: Any, max_rows: int) -> None:
    """A query result as a table (values are data, never Rich markup)."""
    if result.description is None:  # a statement without a result (SET, CREATE VIEW …)
        console.print("ok")
        return
    names = [d[0] for d in result.description]
    rows = result.fetchmany(max_rows + 1)
    table = Table()
    for n in names:
        table.add_column(Text(n))
    for r in rows[:max_rows]:
        table.add_row(
            *(
                Text(
                    ""
                    if v is None
                    else f"{v:,}"
                    if isinstance(v, int) and not isinstance(v, bool)
                    else str(v)
                )
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
    max_rows: Annotated[int, typer.Option(help="rows to print", min=0)] = 100,
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
    max_rows: Annotated[int, typer.Option(help="rows to print", min=0)] = 100,
) -> None:
    """Run any SQL over the lake (views: compositions, composition_counts, elements)."""
    from crystalspace.lake.duck import connect
    from crystalspace.lake.store import LakeError

    if not statement.strip():
        raise LakeError('empty SQL statement; e.g. crystalspace sql "SELECT count(*) FROM compositions"')
    _print_result(connect(lake).execute(statement), max_rows)


if __name__ == "__main__":
    app()
