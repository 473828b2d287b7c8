"""Benchmark: `map embed` (Ray Data, one matrix product per batch) vs the per-formula loop.

    python benchmarks/bench_map_embed.py --lake /work/lake23 --where "arity=3 AND allowed"
    python benchmarks/bench_map_embed.py --quick      # builds a small lake in a temp dir (CI)

Three numbers on the same selection:

1. the reference: ``elementembeddings.composition.CompositionalEmbedding(formula, emb)
   .feature_vector("mean")`` in a Python loop over ``--loop-rows`` sampled formulas (the
   Embedding object is loaded once, as a fair loop would);
2. ``crystalspace.maps.embeddings.composition_embedding`` on the same rows, in one process;
3. the end-to-end ``map embed`` run (DuckDB read + embed + PCA projection + Parquet write, Ray
   actors, all CPUs) over the whole selection.

Prints a markdown table with rows/s and the ratios to the loop; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from crystalspace.lake.duck import connect, sql_condition
from crystalspace.maps.embed_lake import _SELECT, embed_selection
from crystalspace.maps.embeddings import EMBEDDINGS, composition_embedding, load_embedding


def _sample(lake: str, where: str, rows: int) -> dict[str, np.ndarray]:
    return (
        connect(lake)
        .execute(
            f"SELECT {_SELECT} FROM compositions WHERE ({sql_condition(where)}) "
            "ORDER BY hash(formula, 7::BIGINT) LIMIT ?",
            [rows],
        )
        .fetchnumpy()
    )


def loop_rate(formulas: list[str], name: str) -> float:
    """Rows/s of the per-formula CompositionalEmbedding loop."""
    from elementembeddings.composition import CompositionalEmbedding
    from elementembeddings.core import Embedding

    emb = Embedding.load_data(EMBEDDINGS[name])
    t0 = time.perf_counter()
    for f in formulas:
        CompositionalEmbedding(f, emb).feature_vector("mean")
    return len(formulas) / (time.perf_counter() - t0)


def batched_rate(table: dict[str, np.ndarray], name: str, repeat: int = 20) -> float:
    """Rows/s of the batched matrix product on the same rows (best of ``repeat``)."""
    z = np.stack([table[f"z{i}"] for i in range(1, 5)], 1)
    n = np.stack([table[f"n{i}"] for i in range(1, 5)], 1)
    em = load_embedding(name)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        composition_embedding(z, n, em)
        best = min(best, time.perf_counter() - t0)
    return len(z) / best


def _quick_lake(root: Path) -> str:
    from crystalspace.space.build import build_lake
    from crystalspace.space.config import make_space_config

    lake = str(root / "lake")
    cfg = make_space_config(overrides={"arities": "2,3", "elements": "Li,Na,Mg,Zn,Cu,Fe,Al,Sn,N,P,O,S,Cl,F"})
    build_lake(cfg, lake, num_cpus=2)
    return lake


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", default=None)
    parser.add_argument("--where", default="arity=3 AND allowed")
    parser.add_argument("--embedding", default="mat2vec")
    parser.add_argument("--loop-rows", type=int, default=5000)
    parser.add_argument("--num-cpus", type=int, default=None)
    parser.add_argument("--no-vectors", action="store_true", help="map embed writes only x, y")
    parser.add_argument("--quick", action="store_true", help="small lake in a temp dir, for CI")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        lake = args.lake or _quick_lake(Path(tmp))
        loop_rows = min(args.loop_rows, 500) if args.quick else args.loop_rows
        table = _sample(lake, args.where, loop_rows)
        formulas = [str(f) for f in table["formula"]]
        loop = loop_rate(formulas, args.embedding)
        batched = batched_rate(table, args.embedding)
        report = embed_selection(
            lake,
            args.where,
            args.embedding,
            Path(tmp) / "emb",
            vectors=not args.no_vectors,
            num_cpus=args.num_cpus,
        )
    cpus = args.num_cpus or os.cpu_count()
    lines = [
        f"selection `{args.where}` of {lake}, embedding {args.embedding}, {cpus} CPUs",
        "",
        "| what | rows | rows/s | vs loop |",
        "|---|---|---|---|",
        f"| CompositionalEmbedding loop (1 process) | {len(formulas):,} | {loop:,.0f} | 1 |",
        f"| composition_embedding, one matrix product (1 process) | {len(formulas):,} | {batched:,.0f} | {batched / loop:,.0f}x |",
        f"| `map embed` end to end (Ray Data, DuckDB read, PCA, Parquet write{'' if not args.no_vectors else ', no vectors'}) "
        f"| {report.rows:,} | {report.rows_per_s:,.0f} | {report.rows_per_s / loop:,.0f}x |",
        "",
        f"`map embed`: {report.seconds:.1f} s wall ({report.fit_seconds:.1f} s selecting + fitting PCA), "
        f"{report.dropped:,} rows dropped (elements {args.embedding} lacks); loop extrapolated to the "
        f"selection: {(report.rows + report.dropped) / loop / 60:,.1f} min",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
