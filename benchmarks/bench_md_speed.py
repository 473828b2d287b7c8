"""Benchmark: MD speed in ns/day for one replica and aggregated over a batch of replicas on one device.

    python benchmarks/bench_md_speed.py                                   # GPU: pair potential, 1/8/64/256
    python benchmarks/bench_md_speed.py --provider chgnet --replicas 1,8  # any registered provider
    python benchmarks/bench_md_speed.py --model runs/schnet/model.pt      # a saved MLFF (crystalspace.mlff)
    python benchmarks/bench_md_speed.py --quick                           # CPU smoke test (seconds)

System: LGPS, the 50-atom CHGNet-relaxed cell (benchmarks/data/LGPS_chgnet_relaxed.cif). Each size
runs the real engine (:class:`crystalspace.md.engine.ReplicaBatch`: Nosé–Hoover chain NVT at 1000 K,
2 fs, blow-up checks every 10 steps, frames buffered every 10 steps) for ``--steps`` steps after
``--warmup`` steps, synchronising the device before reading the clock. ns/day per replica =
steps × 2 fs / wall; aggregate = that × replicas. The study's single-replica figures (RTX 4090)
are printed next to it where the provider names an architecture; the issue's targets are ≥ that
for one replica and ≥ 100× that aggregated. Writes ``md_speed.csv`` / ``.md`` and a PNG under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from crystalspace.md.engine import MDProtocol, ReplicaBatch, ReplicaSpec, replica_seed
from crystalspace.md.forces import get_provider

STUDY_NS_PER_DAY = {"CGCNN": 45.0, "SchNet": 22.5, "DimeNet": 1.4, "DimeNet++": 6.0, "LEFTNet": 11.3,
                    "Equiformer": 3.0}  # fmt: skip
STUDY_ALIASES = {"cgcnn": "CGCNN", "schnet": "SchNet", "dimenet": "DimeNet", "dimenetpp": "DimeNet++",
                 "dimenetplusplus": "DimeNet++", "dimenet++": "DimeNet++", "leftnet": "LEFTNet",
                 "equiformer": "Equiformer"}  # fmt: skip
CLOSEST_EQUIVARIANT = {"nequip": "Equiformer", "painn": "Equiformer"}
"""Architectures the study did not run, compared with its equivariant model (labelled as such)."""
CIF = Path(__file__).parent / "data" / "LGPS_chgnet_relaxed.cif"


def measure(
    provider_name: str, replicas: int, steps: int, warmup: int, device: str, dtype: str
) -> dict[str, float]:
    """Wall time of ``steps`` MD steps for a batch of ``replicas`` LGPS replicas."""
    from ase.io import read

    atoms = read(CIF)
    provider = get_provider(provider_name, device)
    specs = [ReplicaSpec("LGPS", 1000.0, k, replica_seed(0, 1000.0, k), k) for k in range(replicas)]
    protocol = MDProtocol(t0_K=1000.0, ramp_ps=0.0, production_ps=1e6, dtype=dtype)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        batch = ReplicaBatch(provider, atoms.numbers, atoms.cell[:], atoms.positions, specs, protocol, tmp, "bench",
                             device=device)  # fmt: skip
        batch.start()
        for _ in range(warmup):
            batch.advance()
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            batch.advance()
        sync()
        wall = time.perf_counter() - start
        batch.writer.rows.clear()
        stopped = int((~batch.active).sum())
    per_replica = steps * protocol.dt_fs * 1e-6 / wall * 86400
    return {"replicas": replicas, "atoms": len(atoms), "steps": steps, "wall_s": wall, "ms_per_step": 1000 * wall / steps,
            "ns_day_per_replica": per_replica, "ns_day_aggregate": per_replica * replicas, "stopped": stopped}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--provider", default="pair", help="registered force provider (pair, chgnet, ...)")
    ap.add_argument("--model", default=None, help="path of a saved MLFF model (overrides --provider)")
    ap.add_argument("--replicas", default="1,8,64,256")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="CPU, replicas 1,2, 10 steps")
    ap.add_argument("--out", default=os.environ.get("OUT", "bench-out"))
    args = ap.parse_args(argv)
    if args.quick:
        args.device, args.replicas, args.warmup = "cpu", "1,2", 2
        args.steps = min(args.steps, 10)
    if args.device == "cpu":
        torch.set_num_threads(1 if args.quick else (os.cpu_count() or 1))
    name = args.model or args.provider
    rows = []
    for r in [int(x) for x in args.replicas.split(",")]:
        try:
            row = measure(name, r, args.steps, args.warmup, args.device, args.dtype)
        except torch.OutOfMemoryError:
            print(f"{r} replicas: out of device memory", file=sys.stderr)
            break
        rows.append({"provider": Path(name).stem, "device": args.device, **row})
        print(f"{r:4d} replicas: {row['ms_per_step']:.2f} ms/step, {row['ns_day_aggregate']:.1f} ns/day aggregate",
              flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    base = df.ns_day_per_replica.iloc[0]
    df["aggregate_vs_1_replica"] = df.ns_day_aggregate / base
    config = Path(name) / "config.json"  # a registry entry names its architecture
    arch = json.loads(config.read_text()).get("arch", "") if config.is_file() else Path(name).stem
    ref, study = study_reference(arch or Path(name).stem)
    df["study_reference"] = ref
    df["study_single_ns_day"] = study
    df["aggregate_vs_study"] = df.ns_day_aggregate / study
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "md_speed.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    (out / "md_speed.md").write_text(
        df.to_markdown(index=False) if _has_tabulate() else df.to_string(index=False)
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no md_speed.png")
        return 0

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.loglog(df.replicas, df.ns_day_aggregate, "o-", label="aggregate")
    ax.loglog(df.replicas, df.ns_day_per_replica, "s--", label="per replica")
    ax.set(
        xlabel="replicas in one batch",
        ylabel="ns/day",
        title=f"LGPS (50 atoms), {Path(name).stem}, {args.device}",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "md_speed.png", dpi=110)
    print(f"wrote {out}/md_speed.csv, .md, .png")
    return 0


def study_reference(model_name: str) -> tuple[str, float]:
    """The study's single-replica figure for a model name like ``dimenetpp-lgps-v1`` (label, ns/day).

    The architecture is the name's first ``-`` field (``dimenetpp`` → DimeNet++, never DimeNet);
    NequIP/PaiNN, absent from the study, get its equivariant model, labelled as the closest one.
    """
    arch = re.split(r"[-_]", model_name.lower())[0]
    if arch in STUDY_ALIASES:
        label = STUDY_ALIASES[arch]
        return label, STUDY_NS_PER_DAY[label]
    if arch in CLOSEST_EQUIVARIANT:
        label = CLOSEST_EQUIVARIANT[arch]
        return f"{label} (closest equivariant; {arch} not in study)", STUDY_NS_PER_DAY[label]
    return "", float("nan")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
