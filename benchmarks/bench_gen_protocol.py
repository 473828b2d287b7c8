"""iMatGen protocol on one GPU: VO dataset → CHGNet labels → Ray Train → Tables 1/2, rediscovery,
stability, baseline, figures. One command, about 8 minutes on 1×H100 (16 cores).

    python benchmarks/bench_gen_protocol.py --out $OUT          # GPU, reduced study protocol
    python benchmarks/bench_gen_protocol.py --quick --out /tmp/g  # CPU smoke run (minutes)

Reductions against the study (to fit ~8 minutes): fewer training epochs; Table 1 on a random
subset of ``reconstruct_max`` rows per split; 1,000 latent points per sampling method (study: 8,835
slerp and 10,000 random); 20 new structures relaxed for E_hull; one model trained on the "VO
virtual dataset" (known V–O held out) serves every table (the study trained a second model on all
data for generation). Images are at the study's size (m = 32, n = 64, l = 15 Å).
Data: /work/shared/data/mp_binary_smact/mp_binary_docs.jsonl.gz (5.7 MB) and
mp_id_lists/mp_ids_union_DERIVED.csv.gz (3.5 MB); override with --source / --mp-formulas.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

FULL = {
    "cell_grid": 32,
    "basis_grid": 64,
    "energy_chunk": 128,
    "energy_device": "cuda",
    "train": {
        "cell_latent": 32,
        "basis_latent": 128,
        "vae_latent": 128,
        "vae_hidden": 1024,
        "width": 16,
        "epochs_cell": 8,
        "epochs_basis": 8,
        "epochs_vae": 150,
        "batch_size": 64,
        "use_gpu": True,
    },
    "n_samples": 1000,
    "reconstruct_max": 500,
    "relax_max": 20,
    "relax_steps": 100,
    "baseline_budget": 300,
}
QUICK = {
    "limit": 150,
    "cell_grid": 16,
    "basis_grid": 32,
    "energy_chunk": 32,
    "train": {
        "cell_latent": 16,
        "basis_latent": 32,
        "vae_latent": 16,
        "vae_hidden": 128,
        "width": 4,
        "epochs_cell": 2,
        "epochs_basis": 2,
        "epochs_vae": 40,
        "batch_size": 32,
    },
    "n_samples": 100,
    "reconstruct_max": 30,
    "relax_max": 2,
    "relax_steps": 10,
    "baseline_budget": 20,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "gen_protocol_out"))
    ap.add_argument("--quick", action="store_true", help="tiny CPU run")
    ap.add_argument("--source", default=None, help="MP binaries JSON lines")
    ap.add_argument("--num-cpus", type=int, default=None)
    ap.add_argument(
        "--set", default="{}", help='JSON overrides, e.g. \'{"relax_max": 10, "train": {"epochs_vae": 80}}\''
    )
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import torch

    from crystalspace.gen import workflow
    from crystalspace.gen.config import make_gen_config
    from crystalspace.gen.sample import MP_VO_SOURCE
    from crystalspace.runtime import init_ray

    if args.quick:
        torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    values = dict(QUICK if args.quick else FULL)
    overrides = json.loads(args.set)
    values["train"] = {**values["train"], **overrides.pop("train", {})}
    values.update(overrides)
    values.update(data_dir=str(out / "data"), model_dir=str(out / "model"), out_dir=str(out / "eval"))
    if args.source:
        values["source"] = args.source
    cfg = make_gen_config(None, {k: json.dumps(v) if isinstance(v, dict) else v for k, v in values.items()})
    if not args.quick and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --quick for the CPU run")
    assert Path(MP_VO_SOURCE).exists(), MP_VO_SOURCE
    init_ray(num_cpus=args.num_cpus or (2 if args.quick else os.cpu_count()))
    times: dict[str, float] = {}

    def timed(step: str, fn: Any) -> Any:
        t = time.perf_counter()
        result = fn(cfg)
        times[step] = time.perf_counter() - t
        print(f"{step}: {times[step]:.0f} s", flush=True)
        return result

    data = timed("dataset + CHGNet labels", workflow.build_data)
    final = timed("training (Ray Train)", workflow.train)
    timed("evaluation", workflow.evaluate)
    lines = [
        f"## iMatGen protocol ({'quick CPU' if args.quick else 'GPU'} run, {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'})",
        "",
        f"VO dataset: {data['structures']:,} structures from {data['sources_kept']:,} of {data['sources']:,} MP binaries "
        f"(study: 10,981 from 7,472); stable (E_f ≤ 0.5 eV/atom, CHGNet): {data.get('stable', 'n/a')}.",
        f"Training: {json.dumps(final)}",
        f"Settings: {json.dumps({k: v for k, v in values.items() if not k.endswith('_dir')})}",
        "",
        (out / "eval" / "report.md").read_text(),
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in times.items()],
        "",
    ]
    (out / "RESULTS_gen.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
