"""``crystalspace lake``, ``query`` and ``sql``: check and repair a lake, and read it with SQL."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from crystalspace.cli.options import AddressOpt, LakeOpt, NumCpusOpt, console
from crystalspace.cli.space import print_build, print_findings
from crystalspace.errors import user_errors

app = typer.Typer(
    help="Check a lake's files against its record; repair what is damaged.", no_args_is_help=True
)


@app.command("verify")
@user_errors
def lake_verify(lake: LakeOpt = "lake") -> None:
    """Check every shard file (size, SHA-256) against the record and every complete arity's totals
    against the exact counts of the lake's configuration; change nothing (exit 1 if not sound)."""
    from crystalspace.space.build import verify_lake

    report = verify_lake(lake)
    print_findings(report.findings, fixed=False)
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


@app.command("repair")
@user_errors
def lake_repair(
    lake: LakeOpt = "lake",
    address: AddressOpt = None,
    num_cpus: NumCpusOpt = None,
) -> None:
    """Check every file in full, remove what is damaged or does not belong, rebuild it from the
    lake's own configuration, and rewrite the record and manifest (upgrades format-1 lakes)."""
    from crystalspace.space.build import repair_lake

    print_build(repair_lake(lake, address=address, num_cpus=num_cpus))


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
