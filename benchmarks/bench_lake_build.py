"""Benchmark: build a composition lake with Ray Data, then query it with DuckDB.

    python benchmarks/bench_lake_build.py --arity 4 --lake /tmp/lake4          # whole quaternary
    python benchmarks/bench_lake_build.py --arity 2,3 --lake /tmp/lake23       # binary + ternary

Prints a table (what, size, time, throughput) and checks the lake's counts against the exact
``space count`` numbers (exit status 1 on any mismatch).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from crystalspace.lake.duck import connect, run_query
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config
from crystalspace.space.engine import Space


def _size(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*.parquet"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arity", default="2,3")
    parser.add_argument("--lake", required=True)
    parser.add_argument("--elements", default=None)
    parser.add_argument("--rows", default="auto")
    parser.add_argument("--shard-rows", type=int, default=4_000_000)
    parser.add_argument("--num-cpus", type=int, default=None)
    args = parser.parse_args()
    config = make_space_config(
        overrides={
            "arities": args.arity,
            "elements": args.elements,
            "rows": args.rows,
            "shard_rows": args.shard_rows,
        }
    )
    space = Space.load(config)
    t0 = time.perf_counter()
    report = build_lake(config, args.lake, num_cpus=args.num_cpus)
    build_s = time.perf_counter() - t0
    size = _size(args.lake)
    con = connect(args.lake)
    t0 = time.perf_counter()
    stored = dict(con.execute("SELECT arity, count(*) FROM compositions GROUP BY arity").fetchall())
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    table2 = run_query(con, "table2").fetchall()
    table2_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    system = run_query(con, "chemical_system", {"elements": "Li,Zn,Sn,O", "limit": "100000"}).fetchall()
    system_s = time.perf_counter() - t0

    total = sum(t["compositions"] for t in report.totals.values())
    rows = sum(t["rows"] for t in report.totals.values())
    lines = [
        ("build (Ray Data, write Parquet)", f"{total:,} compositions", build_s, total / build_s),
        ("  rows stored", f"{rows:,} rows, {size / 1e9:.2f} GB", build_s, rows / build_s),
        ("DuckDB count(*) by arity", f"{rows:,} rows", scan_s, rows / scan_s),
        ("DuckDB table2 (counts view)", f"{len(table2)} arities", table2_s, float("nan")),
        ("DuckDB Li-Zn-Sn-O system", f"{len(system)} rows", system_s, float("nan")),
    ]
    print(f"\nmachine: {os.cpu_count()} CPUs; config: arity {args.arity}, rows {args.rows}")
    print(f"{'what':34} {'size':>36} {'time s':>9} {'per s':>14}")
    for what, size_s, secs, rate in lines:
        print(f"{what:34} {size_s:>36} {secs:9.2f} {rate:14,.0f}")

    ok = report.complete
    for arity, totals in report.totals.items():
        exact = space.count(arity)
        match = (totals["compositions"], totals["allowed"], totals["known"]) == (
            exact.compositions,
            exact.allowed,
            exact.known,
        )
        match &= stored.get(arity, 0) == totals["rows"]
        print(
            f"arity {arity}: lake allowed {totals['allowed']:,} vs count {exact.allowed:,}: {'ok' if match else 'MISMATCH'}"
        )
        ok &= match
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
