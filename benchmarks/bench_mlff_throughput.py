"""Benchmark: force-field speed per model — training throughput, force latency, batched throughput.

    python benchmarks/bench_mlff_throughput.py --data DIR --out DIR            # one GPU (H100)
    python benchmarks/bench_mlff_throughput.py --data DIR --out DIR --quick    # CPU smoke test

For every model of the zoo at the MLFF study's width (each model's ``study_hparams``, which size it as
Table 1; hidden 128 and 3 layers for models outside the study), cutoff 6 Å, on 50-atom LGPS frames:
- training step throughput (structures/s): forward, forces by autograd with create_graph, loss,
  backward, Adam step, batch 16 (graphs prebuilt, as the training loop has them);
- single-structure force latency (ms): ``Potential.batched`` with R = 1, neighbour list included
  (what one MD step of one replica costs);
- batched force throughput (structures/s and atom-steps/s) with R = 32 replicas (what batched MD
  can reach), and the single-replica ns/day at the study's 2 fs step beside Table 1's ns/day
  (the study's figure is for its own code on one RTX 4090).
With two or more GPUs it also runs Ray Train for DimeNet++ on 1 and 2 GPU workers (DDP) and prints
the scaling (target ≥ 1.8× on 2 GPUs). Writes ``mlff_throughput.md`` / ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Run from a checkout without installing: the repository root goes on the path of this process
# and (through PYTHONPATH) of the Ray workers it starts.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

from crystalspace.mlff.data import labelled_rows, load_material  # noqa: E402
from crystalspace.mlff.models import MODELS, build_model  # noqa: E402

TABLE1_NS_PER_DAY = {
    "cgcnn": 45.0, "schnet": 22.5, "dimenet": 1.4, "dimenetpp": 6.0, "gnstat": 10.0,
    "deepergatgnn": 30.0, "scn": 2.8, "escn": 8.1, "forcenet": 25.7, "equiformer": 3.0,
    "leftnet": 11.3,
}  # fmt: skip
"""The MLFF study's Table 1 "MD time (ns per day)", its code on one RTX 4090."""
STEP_FS = 2.0
"""The study's MD time step."""


def model_hparams(name: str, quick: bool) -> dict[str, Any]:
    """The study's width for a Table 1 model, hidden 128 / 3 layers otherwise; tiny with ``quick``."""
    if quick:
        return {"cutoff": 4.0, "hidden": 16, "layers": 1}
    study = MODELS[name].study_hparams
    return {"cutoff": 6.0, **(study or {"hidden": 128, "layers": 3})}


from crystalspace.mlff.potential import Potential  # noqa: E402
from crystalspace.mlff.train import rows_to_graphs  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(
    pot: Potential, graphs: list[Any], batch_size: int, steps: int, device: torch.device
) -> float:
    from torch_geometric.loader import DataLoader

    opt = torch.optim.Adam(pot.parameters(), lr=1e-4)
    batches = [b.to(device) for b in DataLoader(graphs, batch_size=batch_size, shuffle=False)]
    done = 0
    for k in range(steps + 2):
        if k == 2:  # two warm-up steps
            _sync(device)
            t0, done = time.perf_counter(), 0
        b = batches[k % len(batches)]
        out = pot(b, forces=True, training=True)
        loss = torch.mean(((out.energy - b.energy) / b.natoms) ** 2) + 1000 * torch.mean(
            (out.forces - b.forces) ** 2
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += b.num_graphs
    _sync(device)
    return done / (time.perf_counter() - t0)


def force_speed(
    pot: Potential, rows: list[dict[str, Any]], replicas: int, repeats: int, device: torch.device
) -> float:
    z = torch.as_tensor(np.asarray(rows[0]["numbers"]), device=device)
    pos = torch.as_tensor(np.stack([r["positions"].reshape(-1, 3) for r in rows[:replicas]]), device=device)
    cell = torch.as_tensor(np.stack([r["cell"].reshape(3, 3) for r in rows[:replicas]]), device=device)
    for _ in range(2):
        pot.batched(z, pos, cell)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        pot.batched(z, pos, cell)
    _sync(device)
    return (time.perf_counter() - t0) / repeats


def ray_scaling(data: str, out: Path, workers: int, seconds: float, quick: bool) -> float:
    from crystalspace.mlff.config import make_mlff_config
    from crystalspace.mlff.train import train_model

    cfg = make_mlff_config(
        None,
        {
            "data": data,
            "model": "dimenetpp",
            "hidden": 32 if quick else 128,
            "layers": 1 if quick else 4,
            "cutoff": 4.0 if quick else 6.0,
            "train_per_temperature": 8 if quick else 200,
            "val_per_temperature": 2 if quick else 10,
            "epochs": 2 if quick else 3,
            "batch_size": 4 if quick else 16,
            "num_workers": workers,
            "use_gpu": torch.cuda.is_available(),
            "time_budget_s": seconds,
            "out": str(out / f"scaling_{workers}"),
            "registry": str(out / f"scaling_{workers}" / "registry"),
            "dataset_name": f"scaling{workers}",
        },
    )
    result = train_model(cfg)
    rates = [r["train_structures_per_s"] for r in result.history[1:]] or [
        result.history[-1]["train_structures_per_s"]
    ]
    return float(np.median(rates))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mlff_reference")
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/bench_mlff"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, CPU smoke test")
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1 if args.quick else max(torch.get_num_threads(), 1))
    cutoff = 4.0 if args.quick else 6.0
    n_frames = 8 if args.quick else 64
    rows = labelled_rows(load_material(args.data, "LGPS").slice(0, n_frames))
    graphs = rows_to_graphs(rows, cutoff, 500)
    edges = np.mean([g.edge_index.shape[1] for g in graphs])
    print(
        f"device {device} ({torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}), LGPS 50 atoms, "
        f"rc {cutoff} Å, {edges:.0f} edges/structure"
    )
    results = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        pot = Potential(build_model(name, **model_hparams(name, args.quick))).to(device)
        params = sum(p.numel() for p in pot.parameters())
        train_rate = train_throughput(pot, graphs, 4 if args.quick else 16, 3 if args.quick else 20, device)
        pot.eval()
        latency = force_speed(pot, rows, 1, 3 if args.quick else 20, device)
        r = min(len(rows), 8 if args.quick else 32)
        batched = force_speed(pot, rows, r, 2 if args.quick else 10, device)
        row = {
            "model": name,
            "params": params,
            "train_structures_per_s": train_rate,
            "latency_ms": 1000 * latency,
            "batched_replicas": r,
            "batched_structures_per_s": r / batched,
            "batched_atom_steps_per_s": 50 * r / batched,
            "conservative": pot.conservative,
            "ns_per_day": 86400 / latency * STEP_FS * 1e-6,
            "study_ns_per_day": TABLE1_NS_PER_DAY.get(name),
        }
        results.append(row)
        print(
            f"{name:10s} {params:>9,d} params  train {train_rate:8.1f} struct/s  latency {1000 * latency:7.2f} ms  "
            f"batched(R={r}) {r / batched:8.1f} struct/s",
            flush=True,
        )
    scaling = None
    if not args.no_scaling and (torch.cuda.device_count() >= 2 or args.quick):
        from crystalspace.runtime import init_ray

        init_ray(num_cpus=2 if args.quick else None)
        one = ray_scaling(args.data, out, 1, 20 if args.quick else 90, args.quick)
        two = ray_scaling(args.data, out, 2, 20 if args.quick else 90, args.quick)
        scaling = {"one_worker": one, "two_workers": two, "speedup": two / one, "efficiency": two / one / 2}
        print(
            f"Ray Train DimeNet++: 1 worker {one:.1f}, 2 workers {two:.1f} struct/s -> {two / one:.2f}x (target 1.8x)"
        )
    lines = [
        f"device: {device}; LGPS 50 atoms, rc {cutoff} Å, {edges:.0f} edges/structure, "
        f"{'tiny models (--quick)' if args.quick else 'study widths'}",
        "",
        "| model | params | train struct/s (batch 16) | force latency, 1 structure (ms) | batched struct/s "
        "| batched atom-steps/s | ns/day, 1 replica (2 fs) | study ns/day (Table 1) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        study = f"{r['study_ns_per_day']:.1f}" if r["study_ns_per_day"] else "—"
        lines.append(
            f"| {r['model']}{'' if r['conservative'] else ' (direct forces)'} | {r['params']:,} | {r['train_structures_per_s']:.1f} | "
            f"{r['latency_ms']:.2f} | {r['batched_structures_per_s']:.1f} (R={r['batched_replicas']}) | {r['batched_atom_steps_per_s']:.0f} "
            f"| {r['ns_per_day']:.1f} | {study} |"
        )
    if scaling:
        lines += [
            "",
            f"Ray Train DimeNet++ 1 → 2 workers: {scaling['one_worker']:.1f} → {scaling['two_workers']:.1f} "
            f"structures/s, {scaling['speedup']:.2f}× (efficiency {scaling['efficiency']:.0%}; target ≥ 1.8×)",
        ]
    (out / "mlff_throughput.md").write_text("\n".join(lines) + "\n")
    (out / "mlff_throughput.json").write_text(json.dumps({"results": results, "scaling": scaling}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
