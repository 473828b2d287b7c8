"""``crystalspace map``: build the maps, draw them, write the explorer, embed at scale."""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crystalspace.cli.options import AddressOpt, NumCpusOpt
from crystalspace.errors import user_errors

app = typer.Typer(
    help="Maps of chemical space: embeddings, PCA / t-SNE / UMAP, figures.", no_args_is_help=True
)
console = Console() if sys.stdout.isatty() else Console(width=200)

MapsOpt = Annotated[Path, typer.Option("--maps", help="maps folder")]


@app.command("build")
@user_errors
def build(
    lake: Annotated[
        list[str], typer.Option("--lake", help="lake(s); each arity is read from the first that has it")
    ],
    out: Annotated[Path, typer.Option("--out", help="maps folder")] = Path("maps"),
    arity: Annotated[str, typer.Option(help="arities, e.g. 2,3,4")] = "2,3",
    embeddings: Annotated[str, typer.Option("--embedding", help="all or e.g. mat2vec,magpie")] = "all",
    methods: Annotated[str, typer.Option("--method", help="all or e.g. pca,umap")] = "all",
    per_category: Annotated[
        int, typer.Option(min=1, help="compositions sampled per category and arity")
    ] = 3000,
    seed: Annotated[int, typer.Option(help="sampling and projection seed")] = 0,
) -> None:
    """Sample the lake, embed, project to 2-D and measure how well the categories separate."""
    from crystalspace.maps.build import build_maps
    from crystalspace.maps.embeddings import MapsError, parse_embeddings
    from crystalspace.maps.reduce import parse_methods
    from crystalspace.maps.separation import to_markdown
    from crystalspace.space.config import parse_arities

    arities = parse_arities(arity)
    if not arities or any(not 2 <= a <= 4 for a in arities):
        raise MapsError(f"--arity expects arities between 2 and 4, e.g. 2,3; got {arity!r}")
    method_names = parse_methods(methods)
    if not method_names:
        raise MapsError(f"--method expects all or projection names, e.g. pca,umap; got {methods!r}")
    if out.exists() and not out.is_dir():
        raise MapsError(f"--out {out}: exists and is not a directory")
    report = build_maps(
        lake,
        out,
        arities=arities,
        embeddings=parse_embeddings(embeddings),
        methods=method_names,
        per_category=per_category,
        seed=seed,
    )
    for arity_, sample in report.samples.items():
        got = sample.rows["category"].value_counts().to_dict()
        console.print(
            f"arity {arity_}: "
            + ", ".join(f"{c} {got.get(c, 0):,}/{n:,}" for c, n in sample.available.items())
        )
    for note in report.notes:
        console.print(note)
    lost = report.dropped[report.dropped["dropped"] > 0]
    for r in lost.itertuples(index=False):
        console.print(
            f"arity {r.arity}: {r.embedding} drops {r.dropped:,} of {r.sampled:,} (lacks {r.lacking_elements})"
        )
    cols = ["arity", "embedding", "method", "chance", "knn_2d", "knn_full", "silhouette_2d", "knn_anion_2d"]
    console.print(to_markdown(report.separation[cols]), markup=False, highlight=False)
    console.print(f"maps written to {out} in {report.seconds['total']:.0f} s")


@app.command("figures")
@user_errors
def figures(maps: MapsOpt = Path("maps")) -> None:
    """Draw the PNG figures of a maps folder (under maps/figures/)."""
    from crystalspace.maps.figures import make_figures

    for path in make_figures(maps):
        console.print(str(path))


@app.command("explore")
@user_errors
def explore(
    maps: MapsOpt = Path("maps"),
    open_: Annotated[bool, typer.Option("--open/--no-open", help="open the page in a browser")] = False,
) -> None:
    """Write the self-contained explorer page (maps/explorer.html); no server needed."""
    from crystalspace.maps.explorer import write_explorer

    path = write_explorer(maps)
    console.print(f"{path} ({path.stat().st_size / 1e6:.1f} MB); open it in any browser")
    if open_:
        webbrowser.open(path.resolve().as_uri())


@app.command("embed")
@user_errors
def embed(
    lake: Annotated[str, typer.Option("--lake", help="lake path")] = "lake",
    where: Annotated[str, typer.Option(help="SQL filter on the lake's columns")] = "allowed",
    embedding: Annotated[str, typer.Option(help="element embedding")] = "mat2vec",
    out: Annotated[Path | None, typer.Option(help="output folder [embeddings/<embedding>]")] = None,
    project: Annotated[str, typer.Option(help="pca|umap|none: 2-D projection fitted on a sample")] = "pca",
    vectors: Annotated[bool, typer.Option("--vectors/--no-vectors", help="store the full vectors")] = True,
    fit_rows: Annotated[int, typer.Option(min=1, help="rows the projection is fitted on")] = 20_000,
    seed: Annotated[int, typer.Option(help="seed of the fitting sample")] = 0,
    address: AddressOpt = None,
    num_cpus: NumCpusOpt = None,
) -> None:
    """Embed every composition of a lake selection with Ray Data, writing Parquet."""
    from crystalspace.maps.embed_lake import embed_selection

    target = out or Path("embeddings") / embedding
    r = embed_selection(
        lake,
        where,
        embedding,
        target,
        project=project,
        vectors=vectors,
        fit_rows=fit_rows,
        seed=seed,
        address=address,
        num_cpus=num_cpus,
    )
    console.print(
        f"{r.rows:,} compositions embedded with {r.embedding} ({r.dropped:,} dropped: elements the embedding "
        f"lacks), projection {r.projection}, {r.files} files in {r.out}; {r.seconds:.1f} s "
        f"({r.rows_per_s:,.0f} rows/s, fit {r.fit_seconds:.1f} s)"
    )
