"""Benchmark: MD speed (ns/day) per replica and aggregated over 1–256 replicas on one device, old vs new.

    python benchmarks/bench_md_speed.py --out $OUT              # GPU: schnet,nequip,dimenetpp × 1,8,64,256
    python benchmarks/bench_md_speed.py --models runs/registry/schnet-lgps-v1,pair --paths new
    python benchmarks/bench_md_speed.py --quick                 # CPU smoke test (seconds)

System: LGPS, the 50-atom CHGNet-relaxed cell (benchmarks/data/LGPS_chgnet_relaxed.cif). Each
(model, replicas, path) runs the real engine (:class:`crystalspace.md.replicas.ReplicaBatch`:
Nosé–Hoover chain NVT at 1000 K, 2 fs, float32, blow-up checks and frames every 10 steps) for
``--warmup`` steps, then times at least ``--min-steps`` and at most ``--max-steps`` steps (stopping
once ``--budget`` seconds have passed), synchronising the device before reading the clock.

Paths (same model object, same engine):

- ``old``: the provider before issue #5 — vesin once per replica, a torch-geometric ``Data`` each,
  ``Batch.from_data_list``, :meth:`Potential.forward`;
- ``new``: :meth:`Potential.batched` — one vectorised device-resident neighbour search for all
  replicas (:func:`crystalspace.atoms.graph.batched_neighbor_list`), reused as a Verlet list
  (``--skin`` Å), model input built without PyG objects, DimeNet++ split into memory-bounded chunks.

Both paths share the engine, including its CPU-side Nosé–Hoover chain (also part of issue #5), so
``speedup_vs_old`` is the force provider's share; benchmarks/RESULTS.md keeps the numbers measured
before any of it.

Models are architecture names (random-init at the study's size — speed does not depend on the
weights; the energy scale is set so the initial RMS force is 0.5 eV/Å, which keeps the run
physical-looking), registry paths of saved MLFFs, or registered force providers (``pair``, ``chgnet``;
``new`` path only). ns/day per replica = steps × 2 fs / wall; aggregate = × replicas. The study's
single-trajectory figures (RTX 4090: SchNet 22.5, DimeNet++ 6.0, Equiformer 3.0 ns/day, ...) are
printed next to them; NequIP/PaiNN, absent from the study, are compared with Equiformer (labelled).
The issue's targets: one replica ≥ 1× the study, aggregate ≥ 100×. Writes ``md_speed.csv``,
``md_speed.md`` and ``md_speed.png`` under --out.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from crystalspace.atoms.io import StructureError
from crystalspace.md.replicas import MDProtocol, ReplicaBatch, ReplicaSpec, replica_seed
from crystalspace.potentials import ForceProvider, get_provider
from crystalspace.potentials.mlff import potential_provider

STUDY_NS_PER_DAY = {"CGCNN": 45.0, "SchNet": 22.5, "DimeNet": 1.4, "DimeNet++": 6.0, "LEFTNet": 11.3,
                    "Equiformer": 3.0}  # fmt: skip
STUDY_ALIASES = {"cgcnn": "CGCNN", "schnet": "SchNet", "dimenet": "DimeNet", "dimenetpp": "DimeNet++",
                 "dimenetplusplus": "DimeNet++", "dimenet++": "DimeNet++", "leftnet": "LEFTNet",
                 "equiformer": "Equiformer"}  # fmt: skip
CLOSEST_EQUIVARIANT = {"nequip": "Equiformer", "painn": "Equiformer"}
"""Architectures the study did not run, compared with its equivariant model (labelled as such)."""
STUDY_SIZE: dict[str, dict[str, Any]] = {
    "schnet": {"hidden": 128, "layers": 4},
    "nequip": {"hidden": 64, "layers": 3, "lmax": 2},
    "dimenetpp": {"hidden": 128, "layers": 4},
    "painn": {"hidden": 128, "layers": 3},
    "cgcnn": {"hidden": 128, "layers": 3},
}
"""Sizes of the GPU protocol's models (benchmarks/bench_mlff_protocol.py)."""
QUICK_SIZE = {"hidden": 16, "layers": 1}
CIF = Path(__file__).parent / "data" / "LGPS_chgnet_relaxed.cif"
INITIAL_RMS_FORCE = 0.5
"""eV/Å: energy scale of random-init models at the starting structure."""


def lgps() -> Any:
    """The 50-atom LGPS cell (ASE Atoms)."""
    from ase.io import read

    return read(CIF)


def build_potential(spec: str, device: str, quick: bool = False) -> tuple[str, str, Any]:
    """(label, architecture, Potential) of a registry path or an architecture name (random-init)."""
    from crystalspace.mlff.models import build_model
    from crystalspace.mlff.potential import Potential, load_potential

    if Path(spec).exists():
        pot = load_potential(spec, device=device)
        return Path(spec).name, pot.model.arch, pot
    torch.manual_seed(0)
    model = build_model(spec, cutoff=6.0, **(QUICK_SIZE if quick else STUDY_SIZE.get(spec, {})))
    pot = Potential(model).to(device).eval()
    atoms = lgps()
    with torch.no_grad():  # gentle random forces: a 1000 K run stays finite for the benchmark
        _, forces = pot.batched(atoms.numbers, atoms.positions[None], atoms.cell[:][None])
        model.scale.fill_(INITIAL_RMS_FORCE / float(forces.pow(2).mean().sqrt().clamp_min(1e-12)))
    return f"{spec} (random init)", model.arch, pot


def old_provider(pot: Any) -> ForceProvider:
    """The force provider before issue #5: vesin per replica + a torch-geometric Batch."""

    def provider(
        numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = pot.forward(pot.graphs(numbers, positions, cell), forces=True)
        return out.energy.detach(), out.forces.detach().reshape(positions.shape)

    return provider


def providers(
    spec: str, paths: list[str], device: str, skin: float, quick: bool
) -> tuple[str, str, dict[str, Any]]:
    """(label, architecture, {path: provider factory}) for one model spec."""
    if spec in ("pair", "chgnet"):
        return spec, spec, {"new": lambda: get_provider(spec, device)}
    from crystalspace.mlff.potential import Potential

    label, arch, pot = build_potential(spec, device, quick)
    factories: dict[str, Callable[[], ForceProvider]] = {
        "old": lambda: old_provider(pot),
        "new": lambda: potential_provider(Potential(pot.model, pot.max_neighbors, skin=skin).eval()),
    }
    return label, arch, {p: factories[p] for p in paths}


def measure(
    provider: ForceProvider,
    replicas: int,
    device: str,
    warmup: int,
    min_steps: int,
    max_steps: int,
    budget: float,
) -> dict[str, Any]:
    """Wall time per MD step of a batch of ``replicas`` LGPS replicas."""
    atoms = lgps()
    specs = [ReplicaSpec("LGPS", 1000.0, k, replica_seed(0, 1000.0, k), k) for k in range(replicas)]
    protocol = MDProtocol(t0_K=1000.0, ramp_ps=0.0, production_ps=1e6, dtype="float32")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        batch = ReplicaBatch(provider, atoms.numbers, atoms.cell[:], atoms.positions, specs, protocol, tmp, "bench",
                             device=device)  # fmt: skip
        batch.start()
        for _ in range(warmup):
            batch.advance()
        sync()
        start, steps = time.perf_counter(), 0
        while steps < max_steps and (steps < min_steps or time.perf_counter() - start < budget):
            for _ in range(5):
                batch.advance()
            steps += 5
            sync()
            batch.writer.rows.clear()  # frames are buffered, never written: no disk I/O in the timing
        wall = time.perf_counter() - start
        stopped = int((~batch.active).sum())
    per_replica = steps * protocol.dt_fs * 1e-6 / wall * 86400
    return {"replicas": replicas, "steps": steps, "ms_per_step": 1000 * wall / steps,
            "ns_day_per_replica": per_replica, "ns_day_aggregate": per_replica * replicas, "stopped": stopped}  # fmt: skip


def study_reference(model_name: str) -> tuple[str, float]:
    """The study's single-replica figure for a model name like ``dimenetpp-lgps-v1`` (label, ns/day).

    The architecture is the name's first ``-`` field (``dimenetpp`` → DimeNet++, never DimeNet);
    NequIP/PaiNN, absent from the study, get its equivariant model, labelled as the closest one.
    """
    arch = re.split(r"[-_ ]", model_name.lower())[0]
    if arch in STUDY_ALIASES:
        label = STUDY_ALIASES[arch]
        return label, STUDY_NS_PER_DAY[label]
    if arch in CLOSEST_EQUIVARIANT:
        label = CLOSEST_EQUIVARIANT[arch]
        return f"{label} (closest equivariant; {arch} not in study)", STUDY_NS_PER_DAY[label]
    return "", float("nan")


def markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table of ``df`` (numbers to 4 significant digits)."""

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def figure(df: pd.DataFrame, path: Path, title: str) -> None:
    """Aggregate ns/day vs replicas per model, old (dashed) and new (solid), the study's figures dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for k, (model, part) in enumerate(df.groupby("model", sort=False)):
        colour = f"C{k}"
        for path_name, style in (("old", "s--"), ("new", "o-")):
            sub = part[(part.path == path_name) & part.ns_day_aggregate.notna()]
            if len(sub):
                ax.loglog(
                    sub.replicas, sub.ns_day_aggregate, style, color=colour, label=f"{model}, {path_name}"
                )
        study = part.study_single_ns_day.iloc[0]
        if study == study:  # not NaN
            ax.axhline(study, color=colour, ls=":", lw=1)
            ax.axhline(100 * study, color=colour, ls="-.", lw=0.8, alpha=0.6)
    ax.set(xlabel="replicas in one batch", ylabel="aggregate ns/day",
           title=f"{title}\ndotted: study's single trajectory, dash-dot: 100× (target)")  # fmt: skip
    counts = sorted(df.replicas.unique())
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None,
                    help="architecture names, registry paths, or pair/chgnet (default schnet,nequip,dimenetpp; "
                         "--quick: schnet)")  # fmt: skip
    ap.add_argument("--replicas", default="1,8,64,256")
    ap.add_argument("--paths", default="old,new", help="old (vesin + PyG batch) and/or new (batched, Verlet)")
    ap.add_argument("--old-max-replicas", type=int, default=256, help="skip the old path above this")
    ap.add_argument("--skin", type=float, default=1.0, help="Verlet skin of the new path, Å")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-steps", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--budget", type=float, default=4.0, help="seconds of timed steps per measurement")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all; --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="CPU, tiny schnet, replicas 1,2, 5 steps")
    ap.add_argument("--out", default=os.environ.get("OUT", "bench-out"))
    args = ap.parse_args(argv)
    if args.quick:
        args.device, args.models, args.replicas = "cpu", args.models or "schnet", "1,2"
        args.warmup, args.min_steps, args.max_steps, args.threads = 1, 5, 5, 1
    args.models = args.models or "schnet,nequip,dimenetpp"
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    replica_counts = [int(x) for x in args.replicas.split(",")]
    paths = [p for p in args.paths.split(",") if p]
    if not set(paths) <= {"old", "new"}:
        ap.error("--paths takes old and/or new")
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"MD speed, LGPS 50 atoms, NVT 1000 K, 2 fs, float32, on {device_name}", flush=True)
    rows = []
    t_all = time.perf_counter()
    for spec in args.models.split(","):
        label, arch, factories = providers(spec, paths, args.device, args.skin, args.quick)
        ref, study = study_reference(arch or Path(spec).name)
        for path_name, factory in factories.items():
            for r in replica_counts:
                base = {"model": label, "path": path_name, "replicas": r, "device": device_name,
                        "study_reference": ref, "study_single_ns_day": study}  # fmt: skip
                if path_name == "old" and r > args.old_max_replicas:
                    continue
                row = None
                try:
                    with contextlib.suppress(torch.OutOfMemoryError):
                        row = measure(factory(), r, args.device, args.warmup, args.min_steps, args.max_steps,
                                      args.budget)  # fmt: skip
                except StructureError as err:  # the old path has no blow-up guard before its neighbour list
                    print(f"{label:>24} {path_name:>3} R={r:<4d} blew up: {err}", flush=True)
                    rows.append({**base, "ms_per_step": float("nan"), "note": f"blew up: {err}"})
                    continue
                if row is None:  # out of memory: free it outside the except (its traceback holds tensors)
                    print(f"{label:>24} {path_name:>3} R={r:<4d} out of device memory", flush=True)
                    rows.append({**base, "ms_per_step": float("nan"), "note": "OOM"})
                    gc.collect()
                    torch.cuda.empty_cache()
                    break
                rows.append({**base, **row, "note": ""})
                print(f"{label:>24} {path_name:>3} R={r:<4d} {row['ms_per_step']:9.2f} ms/step "
                      f"{row['ns_day_per_replica']:9.2f} ns/day/replica {row['ns_day_aggregate']:10.1f} aggregate "
                      f"(x{row['ns_day_aggregate'] / study:.1f} study)  [{time.perf_counter() - t_all:.0f} s]",
                      flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    for col in ("steps", "ns_day_per_replica", "ns_day_aggregate", "stopped"):
        if col not in df:
            df[col] = float("nan")
    df["single_vs_study"] = df.ns_day_per_replica / df.study_single_ns_day
    df["aggregate_vs_study"] = df.ns_day_aggregate / df.study_single_ns_day
    old = df[df.path == "old"].set_index(["model", "replicas"]).ms_per_step
    df["speedup_vs_old"] = [
        old.get((m, r), float("nan")) / ms
        for m, r, ms in zip(df.model, df.replicas, df.ms_per_step, strict=True)
    ]
    cols = ["model", "path", "replicas", "ms_per_step", "ns_day_per_replica", "ns_day_aggregate", "study_reference",
            "study_single_ns_day", "single_vs_study", "aggregate_vs_study", "speedup_vs_old", "steps", "stopped",
            "note", "device"]  # fmt: skip
    df = df[cols]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "md_speed.csv", index=False)
    text = markdown(df.drop(columns=["device"]))
    (out / "md_speed.md").write_text(f"MD speed, LGPS (50 atoms), {device_name}\n\n{text}")
    print(text)
    figure(df, out / "md_speed.png", f"LGPS (50 atoms), {device_name}")
    print(f"wrote {out}/md_speed.csv, .md, .png in {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
