"""Benchmark: per-step cost of the MD force provider, old path (vesin per replica + PyG Batch) vs new.

    python benchmarks/bench_md_neighbors.py --out $OUT               # CPU and GPU (if any), SchNet/NequIP/DimeNet++
    python benchmarks/bench_md_neighbors.py --models /tmp/registry/schnet-lgps-v1 --replicas 1,8,64,256
    python benchmarks/bench_md_neighbors.py --quick                  # seconds: CPU, tiny SchNet, replicas 1,8

System: LGPS (benchmarks/data/LGPS_chgnet_relaxed.cif, 50 atoms, rc 6 Å). For each model and
replica count R, on one device in one run:

- ``old``: :meth:`Potential.graphs` (vesin once per replica, one torch-geometric ``Data`` each,
  ``Batch.from_data_list``) then :meth:`Potential.forward` — the provider before issue #5;
- ``new``: :func:`crystalspace.atoms.graph.batched_neighbor_list` (all replicas in one tensor op) and
  :meth:`Potential.batched` (model input built directly);
- ``verlet``: ``new`` with a Verlet list (``skin`` Å), the positions taking an MD-like random step of
  ``--step`` Å per atom per call, so the list is rebuilt every few calls (amortised cost shown).

"nl" is the neighbour search alone, "force" the whole provider call (search + energy + forces);
ratios are old / new. Models are a registry entry path or an architecture name (an untrained model
of the study's size: timing does not depend on the weights). Energies of the three paths are
checked to agree. On CPU only replica counts up to ``--cpu-max-replicas`` are run. Writes
``neighbors.csv`` / ``.md`` under --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from crystalspace.atoms.graph import batched_neighbor_list, neighbor_list
from crystalspace.mlff.potential import Potential

sys.path.insert(0, str(Path(__file__).parent))
from bench_md_speed import build_potential  # one place for the benchmark models


def timed(fn: Callable[[], object], calls: int, device: str) -> float:
    """Mean wall time of ``fn`` in ms (one warm-up call; device synchronised)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return 1000 * (time.perf_counter() - start) / calls


def measure(
    spec: str, replicas: int, calls: int, skin: float, step: float, device: str, quick: bool = False
) -> dict[str, object]:
    """Old / new / Verlet timings of one model at one replica count."""
    from bench_md_speed import lgps

    atoms = lgps()
    name, _, pot = build_potential(spec, device, quick)
    verlet = Potential(pot.model, pot.max_neighbors, skin=skin)
    gen = torch.Generator().manual_seed(0)
    z = torch.as_tensor(atoms.numbers, device=device)
    cell = (
        torch.as_tensor(atoms.cell[:], dtype=torch.float32, device=device).expand(replicas, 3, 3).contiguous()
    )
    base = torch.as_tensor(atoms.positions, dtype=torch.float32).expand(replicas, -1, -1)
    pos = (base + 0.05 * torch.randn(base.shape, generator=gen)).to(device)
    walk = [pos]  # MD-like trajectory for the Verlet list
    for _ in range(calls):
        walk.append(walk[-1] + step * torch.randn(base.shape, generator=gen).to(device) / 3**0.5)
    k = iter(range(10**9))

    def old_nl() -> object:
        return [neighbor_list(pos[r], cell[r], pot.cutoff, True, pot.max_neighbors) for r in range(replicas)]

    row: dict[str, object] = {"model": name, "replicas": replicas, "device": device}
    row["nl_old_ms"] = timed(lambda: pot.graphs(z, pos, cell), calls, device)
    row["nl_vesin_only_ms"] = timed(old_nl, calls, device)
    row["nl_new_ms"] = timed(
        lambda: batched_neighbor_list(pos, cell, pot.cutoff, pot.max_neighbors), calls, device
    )
    row["nl_verlet_ms"] = timed(lambda: verlet.neighbors(walk[next(k) % len(walk)], cell), calls, device)
    row["verlet_rebuilds"] = verlet.rebuilds
    row["force_old_ms"] = timed(lambda: pot.forward(pot.graphs(z, pos, cell), forces=True), calls, device)
    row["force_new_ms"] = timed(lambda: pot.batched(z, pos, cell), calls, device)
    verlet._verlet, k = None, iter(range(10**9))
    row["force_verlet_ms"] = timed(lambda: verlet.batched(z, walk[next(k) % len(walk)], cell), calls, device)
    e_old = pot.forward(pot.graphs(z, pos, cell), forces=True).energy.detach()
    e_new = pot.batched(z, pos, cell)[0]
    e_verlet = verlet.batched(z, pos, cell)[0]
    row["max_dE_eV"] = float(max((e_old - e_new).abs().max(), (e_new - e_verlet).abs().max()))
    row["nl_ratio"] = row["nl_old_ms"] / row["nl_new_ms"]  # type: ignore[operator]
    row["force_ratio"] = row["force_old_ms"] / row["force_new_ms"]  # type: ignore[operator]
    row["force_ratio_verlet"] = row["force_old_ms"] / row["force_verlet_ms"]  # type: ignore[operator]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", default="schnet,nequip,dimenetpp", help="registry paths or architecture names"
    )
    ap.add_argument("--replicas", default=None, help="comma-separated (default 1,8,64; --quick 1,8)")
    ap.add_argument("--calls", type=int, default=5, help="timed calls per measurement")
    ap.add_argument("--skin", type=float, default=1.0, help="Verlet skin, Å")
    ap.add_argument(
        "--step", type=float, default=0.04, help="RMS displacement per call, Å (LGPS 1000 K, 2 fs)"
    )
    ap.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cpu-max-replicas", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads")
    ap.add_argument("--quick", action="store_true", help="CPU, tiny SchNet, replicas 1,8, 2 calls")
    ap.add_argument("--out", default=os.environ.get("OUT", "bench-out"))
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.replicas, args.calls = "schnet", args.replicas or "1,8", min(args.calls, 2)
        args.devices = "cpu"
    args.replicas = args.replicas or "1,8,64"
    torch.set_num_threads(args.threads)
    rows = []
    for device in args.devices.split(","):
        for spec in args.models.split(","):
            for r in [int(x) for x in args.replicas.split(",")]:
                if device == "cpu" and r > args.cpu_max_replicas:
                    continue
                try:
                    row = measure(spec, r, args.calls, args.skin, args.step, device, args.quick)
                except torch.OutOfMemoryError:
                    print(f"{spec}, {r} replicas: out of device memory", file=sys.stderr)
                    torch.cuda.empty_cache()
                    break
                rows.append(row)
                print(f"{device:>4} {row['model']:>24} R={r:<4d} nl {row['nl_old_ms']:8.2f} -> {row['nl_new_ms']:7.2f} ms "
                      f"(x{row['nl_ratio']:.1f}); force {row['force_old_ms']:8.1f} -> {row['force_new_ms']:7.1f} ms "
                      f"(x{row['force_ratio']:.2f}), verlet {row['force_verlet_ms']:7.1f} ms", flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "neighbors.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    (out / "neighbors.md").write_text(df.to_string(index=False, float_format=lambda v: f"{v:.3g}") + "\n")
    print(f"wrote {out}/neighbors.csv, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
