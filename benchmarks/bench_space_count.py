"""Benchmark: count the allowed compositions of the whole quaternary space.

    python benchmarks/bench_space_count.py                 # numba, plus torch on CUDA if present
    python benchmarks/bench_space_count.py --torch-cpu     # also torch on the CPU (slow)

Times table building apart from counting, prints a table (what, size, time, throughput, speed-up
over the numba kernel; on CUDA the count runs twice: the first call still grows the memory pool)
and checks every count against the published total for the paper's setup
(smact14, factors 1..8, Z 1..103: 2,909,434,982), or against numba for any other setup. Exit
status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from crystalspace.chem.oxidation import load_oxidation_set
from crystalspace.space.engine import PUBLISHED_COUNTS
from crystalspace.space.kernels import FilterTables, count_allowed, filter_tables

POOL = tuple(range(1, 104))
T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def _torch_rows(tables: FilterTables, device: str, batch: int | None) -> list[tuple[str, int, float]]:
    from crystalspace.space.kernels_torch import count_allowed_torch

    # first call: tables to the device, CUDA context and kernels warmed on a few tuples
    _, setup_s = _timed(lambda: count_allowed_torch(tables, 0, 4096, device=device, batch_tuples=batch))
    rows: list[tuple[str, int, float]] = [(f"torch {device}: setup + warm-up", -1, setup_s)]
    for what in ("count", "count again") if device == "cuda" else ("count",):
        value, secs = _timed(lambda: count_allowed_torch(tables, device=device, batch_tuples=batch))
        rows.append((f"torch {device}: {what}", value, secs))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ox-set", default="smact14")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--torch-cpu", action="store_true", help="also run the torch kernel on CPU")
    parser.add_argument("--no-cuda", action="store_true", help="skip the torch kernel on CUDA")
    parser.add_argument(
        "--batch-tuples",
        type=int,
        default=None,
        help="torch tuples per batch (default: per device)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    ox = load_oxidation_set(args.ox_set)
    tables, tables_s = _timed(lambda: filter_tables(ox, 4, args.limit, POOL))
    tuples = math.comb(len(POOL), 4)
    compositions = tuples * tables.n_vectors
    count_allowed(tables, 0, 1)  # numba: load / compile outside the timing
    rows: list[tuple[str, int, float]] = [("tables (masks, states)", -1, tables_s)]
    rows.append(("numba: count", *_timed(lambda: count_allowed(tables))))

    devices: list[str] = []
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available() and not args.no_cuda:
            devices.append("cuda")
            gpu = f", {torch.cuda.get_device_name()}"
        if args.torch_cpu:
            devices.append("cpu")
    except ImportError:
        if args.torch_cpu:
            print("torch is not installed: pip install 'crystalspace[gpu]'", file=sys.stderr)
    for device in devices:
        rows.extend(_torch_rows(tables, device, args.batch_tuples))

    published = args.ox_set == "smact14" and args.limit == 8
    expected = PUBLISHED_COUNTS[4][1] if published else rows[1][1]
    numba_s = rows[1][2]
    print(f"\nmachine: {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}){gpu}")
    print(f"quaternary space: {compositions:,} compositions / {tuples:,} tuples")
    print(f"{'what':30} {'allowed':>15} {'time s':>9} {'compositions/s':>16} {'vs numba':>9}  ok")
    ok = True
    for what, value, secs in rows:
        if value < 0:
            print(f"{what:30} {'':>15} {secs:9.3f}")
            continue
        good = value == expected
        ok &= good
        rate = compositions / secs
        print(
            f"{what:30} {value:>15,} {secs:9.3f} {rate:16,.0f} {numba_s / secs:8.1f}x  {'yes' if good else 'NO'}"
        )
    print(f"expected {expected:,} ({'published' if published else 'numba'}): {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
