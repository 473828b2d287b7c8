"""``crystalspace space``: exact counts, lake builds and per-composition explanations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crystalspace.cli.options import AddressOpt, ConfigOpt, LakeOpt, NumCpusOpt, SetOpt, console, overrides
from crystalspace.errors import user_errors

app = typer.Typer(help="Enumerate, filter and label compositions.", no_args_is_help=True)

ArityOpt = Annotated[str | None, typer.Option("--arity", help="arities, e.g. 2,3 (2..4)")]
ElementsOpt = Annotated[str | None, typer.Option("--elements", help="element pool, e.g. Li,Zn,Sn,O")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="largest stoichiometric factor [8]")]
OxOpt = Annotated[str | None, typer.Option("--ox-set", help="smact14|icsd16|icsd24|pymatgen_sp|wiki|FILE")]
RefOpt = Annotated[str | None, typer.Option("--reference", help="known-materials set: mp or FILE")]


def _space_config(config: Path | None, sets: Sequence[str] | None, **values: Any) -> Any:
    from crystalspace.space.config import make_space_config

    return make_space_config(config, overrides(list(sets or []), **values))


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


@app.command("count")
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


@app.command("build")
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
    address: AddressOpt = None,
    num_cpus: NumCpusOpt = None,
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
    print_build(report)


def print_build(report: Any) -> None:
    """What a build or repair found and fixed, its totals, and whether the lake is complete."""
    print_findings(report.findings, fixed=True)
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


def print_findings(findings: list[Any], fixed: bool) -> None:
    """One line per kind of finding: how many, an example, and (``fixed``) what was done."""
    by_kind: dict[str, list[Any]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    for kind, items in by_kind.items():
        action = _FIXES.get(kind, "rebuilt") if fixed else "found"
        example = f"{items[0].path}: {items[0].detail}"
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        console.print(escape(f"{_FINDINGS.get(kind, kind)}: {len(items)} {action} — {example}{more}"))


@app.command("explain")
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
