"""A Ray Tune sweep of the force-field zoo on one GPU (``pipelines/configs/mlff_tune_gpu.yaml``).

    python benchmarks/bench_mlff_tune.py --data DIR --out DIR             # one H200, ~5 min
    python benchmarks/bench_mlff_tune.py --data DIR --out DIR --stability # + short-MD RDF score (needs ASE)
    python benchmarks/bench_mlff_tune.py --quick --out DIR                # CI-size sweep on CPU (smoke test)

12 trials (SchNet / DimeNet++ / NequIP-style × 2 widths × 2 samples of cutoff, depth, learning rate
and force weight), 4 at a time on the GPU, ASHA on the validation force MAE. Tune's experiment
(checkpoints) goes to ``--work`` (default: a temporary directory), so ``--out`` receives only what
people look at: ``tune_results.csv``/``.parquet``, ``tune_history.parquet``, ``tune_sweep.png``,
``best_config.yaml`` and ``RESULTS_tune.md`` (the ranked table as Markdown, wall time, device).
Runs from a checkout without installing; needs ray, torch, torch-geometric and vesin (ASE and scipy
only with ``--stability``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# Run from a checkout without installing: the repository root goes on the path of this process
# and (through PYTHONPATH) of the Ray workers it starts.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
os.chdir(ROOT)  # the sweep configs name their base config relative to the repository root

from crystalspace.tune import load_spec, print_table, run_sweep  # noqa: E402

COLUMNS = ["rank", "trial", "model", "hidden", "layers", "cutoff", "lr", "force_weight", "status", "epochs",
           "val_force_mae", "val_energy_mae", "val_force_r2", "rdf_mae", "md_verdict", "objective"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mlff_reference")
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/bench_mlff_tune"))
    parser.add_argument("--work", default=None, help="Tune experiment directory (default: temporary)")
    parser.add_argument("--stability", action="store_true", help="add the short-MD RDF score")
    parser.add_argument("--quick", action="store_true", help="the CI-size sweep on CPU (smoke test)")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="mlff_tune_")).resolve()
    config = (
        "pipelines/configs/mlff_tune_small.yaml" if args.quick else "pipelines/configs/mlff_tune_gpu.yaml"
    )
    overrides = {} if args.quick else {"data": str(Path(args.data).resolve())}
    spec = load_spec(Path(config), overrides, out=str(out))
    spec.storage = str(work)
    spec.stability.enabled = args.stability
    from crystalspace.runtime import init_ray

    init_ray(num_cpus=2 if args.quick else None)
    t0 = time.perf_counter()
    result = run_sweep(spec)
    wall = time.perf_counter() - t0
    print_table(result.table, sorted(spec.space))
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.quick else "CPU"
    cols = [c for c in COLUMNS if c in result.table]
    shown = result.table[cols].copy()
    for c in shown.columns:
        if shown[c].dtype.kind == "f":
            shown[c] = shown[c].map(lambda v: "-" if v != v else f"{v:.4g}")
    lines = [
        f"# Ray Tune sweep `{config}` ({'quick, CPU' if args.quick else 'GPU'})",
        "",
        f"- device: {device}; {len(result.table)} trials, {spec.max_concurrent} at a time "
        f"({spec.gpus_per_trial} GPU, {spec.cpus_per_trial} CPU each); wall time {wall:.0f} s",
        f"- statuses: {result.table.status.value_counts().to_dict()}",
        f"- stability score: {'on' if args.stability else 'off'}",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)),
        "",
    ]
    (out / "RESULTS_tune.md").write_text("\n".join(lines))
    print(f"wall time {wall:.0f} s; wrote {out}/RESULTS_tune.md, tune_sweep.png, tune_results.csv")
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main())
