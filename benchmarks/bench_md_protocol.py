"""The MLFF stability study's MD half, reduced to fit one GPU run: saved MLFFs → MD replicas → report.

    python benchmarks/bench_md_protocol.py --models R/schnet-lgps-v1,R/dimenetpp-lgps-v1 \
        --structures DIR --reference F1,F2,F3 --labelled DIR --out $OUT      # one GPU
    python benchmarks/bench_md_protocol.py ... --quick                         # CPU smoke test

For every saved model (registry entry from ``bench_mlff_protocol.py``), all replicas of LGPS, Li3PS4
and Li4GeS4 (``--temperatures`` × ``--repeats``) run through Ray actors that share the GPU
(:func:`crystalspace.md.actors.run_md`: the study's protocol — Maxwell–Boltzmann at 100 K, velocity
scaling ramp, Nosé–Hoover chain NVT, 2 fs); the models run one after another so each gets the
whole GPU and its ns/day means something. Then :func:`crystalspace.md.report.build_report` writes
the study's three tables (models with ns/day; −log10 σ(300 K) next to the reference; force MAE vs
RDF MAE with the stable/unstable verdict) and figures, against the reference trajectories
(``--reference``) and with force MAE on labelled reference frames (``--labelled``).

Reductions against the study (stated in ``md_protocol.md``): fewer temperatures and repeats, shorter
ramp and production (the study: 5 ps ramp, 50 ps production, 5 T, ≥ 6 repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

MATERIALS = ("LGPS", "Li3PS4", "Li4GeS4")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", required=True, help="registry entry dirs, comma-separated")
    p.add_argument("--structures", required=True, help="dir with <material>_chgnet_relaxed.cif")
    p.add_argument("--reference", required=True, help="reference trajectory files, comma-separated")
    p.add_argument("--labelled", default="", help="dir with labelled <material>.parquet for force MAE")
    p.add_argument("--out", default=os.environ.get("OUT", "runs/bench_md_protocol"))
    p.add_argument("--temperatures", default="800,1000,1200")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--ramp-ps", type=float, default=2.0)
    p.add_argument("--production-ps", type=float, default=6.0)
    p.add_argument("--actors", type=int, default=1, help="actors per material")
    p.add_argument("--quick", action="store_true", help="tiny CPU run")
    p.add_argument("--reuse", action="store_true",
                   help="take a model's finished MD from --out instead of running it (models run in parallel "
                        "processes, then one --reuse call writes the report)")  # fmt: skip
    args = p.parse_args()

    import torch

    from crystalspace.atoms.io import read_structures
    from crystalspace.md import analysis as an
    from crystalspace.md import report as rp
    from crystalspace.md.actors import run_md
    from crystalspace.md.replicas import MDProtocol
    from crystalspace.potentials import get_provider
    from crystalspace.runtime import init_ray

    gpu = torch.cuda.is_available() and not args.quick
    if args.quick:
        args.temperatures, args.repeats, args.ramp_ps, args.production_ps = "1000,1200", 1, 0.05, 0.2
    temps = [float(t) for t in args.temperatures.split(",")]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    init_ray(num_cpus=2 if args.quick else None)
    structures = {m: read_structures(Path(args.structures) / f"{m}_chgnet_relaxed.cif", index=0)[0]
                  for m in MATERIALS}  # fmt: skip
    protocol = MDProtocol(ramp_ps=args.ramp_ps, production_ps=args.production_ps, checkpoint_every=1000)
    gpus_per_actor = 1.0 / (len(MATERIALS) * args.actors) if gpu else 0.0
    labelled = (
        an.load_trajectories([Path(args.labelled) / f"{m}.parquet" for m in MATERIALS])
        if args.labelled
        else None
    )
    device = "cuda" if gpu else "cpu"
    models, times = [], {}
    for entry in filter(None, args.models.split(",")):
        name = Path(entry).name.split("-")[0]
        done = out / "md" / name / "protocol_run.json"
        if args.reuse and done.exists():
            finished = json.loads(done.read_text())
            summary, times[name] = finished["summary"], finished["wall_s"]
        else:
            t0 = time.perf_counter()
            summary = run_md(structures, temps, args.repeats, out / "md" / name, protocol, provider=str(entry),
                             actors_per_material=args.actors, num_gpus=gpus_per_actor)  # fmt: skip
            times[name] = time.perf_counter() - t0
            done.write_text(json.dumps({"summary": summary, "wall_s": times[name]}, default=str))
        run = rp.load_model(name, [out / "md" / name])
        if labelled is not None:
            run.info["force_mae"] = an.force_mae(get_provider(str(entry), device=device), labelled)
        stopped = [r for r in summary if r["status"] != "ok"]
        print(f"{name}: {len(summary)} replicas ({len(stopped)} stopped) in {times[name]:.0f} s, "
              f"{run.info.get('ns_per_day', float('nan')):.3g} ns/day aggregate", flush=True)  # fmt: skip
        models.append(run)
    reference = an.load_trajectories(list(filter(None, args.reference.split(","))))
    rp.build_report(reference, models, out / "report")
    header = (
        f"device: {torch.cuda.get_device_name(0) if gpu else 'cpu'}; {', '.join(MATERIALS)} at "
        f"{args.temperatures} K × {args.repeats} repeats, ramp {args.ramp_ps} ps + production "
        f"{args.production_ps} ps (study: 5 + 50 ps, 800–1200 K, ≥ 6 repeats); wall s: "
        f"{json.dumps({k: round(v) for k, v in times.items()})}"
    )
    text = "\n\n".join((out / "report" / f"{t}.md").read_text() for t in ("models", "conductivity", "errors"))
    (out / "md_protocol.md").write_text(header + "\n\n" + text)
    print(header + "\n\n" + text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
