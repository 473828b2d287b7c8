"""The MLFF study's protocol, reduced to fit one ~8-minute GPU run: train on LGPS, test transfer.

    python benchmarks/bench_mlff_protocol.py --data DIR --out DIR            # one GPU (H100)
    python benchmarks/bench_mlff_protocol.py --data DIR --out DIR --quick    # CPU smoke test

What is reduced (study → here): training frames 6,000 → ``--train`` (200) per temperature,
validation 500 → ``--val`` (20) per temperature, 10 h → ``--budget`` (100 s) of training per model,
test frames 2,000 → ``--test`` (500) per material. Kept: LGPS-only training over 800–1200 K, cutoff
6 Å, at most 500 neighbours, embeddings of 128 (NequIP: 64 scalars + 16×1o + 8×2e), energy:force
loss 1:1000, Adam + ReduceLROnPlateau, best-validation checkpoint, Ray Train (1 GPU worker).

Writes under ``--out``: ``registry/<arch>-lgps-v1/`` per model, learning curves, the
direct-prediction table ``direct_prediction.md``/``.csv`` (force MAE / R² on unseen LGPS frames and
on Li3PS4 and Li4GeS4 = transfer) and force parity plots per material.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

# Run from a checkout without installing: the repository root goes on the path of this process
# and (through PYTHONPATH) of the Ray workers it starts.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

from crystalspace.mlff.config import make_mlff_config  # noqa: E402
from crystalspace.mlff.evaluate import evaluate_models, format_table  # noqa: E402
from crystalspace.mlff.train import train_model  # noqa: E402

SIZES = {
    "schnet": {"hidden": 128, "layers": 4},
    "dimenetpp": {"hidden": 128, "layers": 4},
    "nequip": {"hidden": 64, "layers": 3},
    "painn": {"hidden": 128, "layers": 3},
    "cgcnn": {"hidden": 128, "layers": 3},
    "forcenet": {"hidden": 128, "layers": 3},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mlff_reference")
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/bench_mlff_protocol"))
    parser.add_argument("--models", default="schnet,dimenetpp,nequip")
    parser.add_argument("--train", type=int, default=200, help="training frames per temperature")
    parser.add_argument("--val", type=int, default=20, help="validation frames per temperature")
    parser.add_argument("--test", type=int, default=500, help="unseen test frames per material")
    parser.add_argument("--budget", type=float, default=100.0, help="training seconds per model")
    parser.add_argument("--cutoff", type=float, default=6.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes on CPU (smoke test)")
    parser.add_argument("--no-eval", action="store_true", help="train only (evaluate later with --evaluate)")
    parser.add_argument("--evaluate", default="", help="registry entry dirs to evaluate too, comma-separated")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available() and not args.quick
    if args.quick:
        args.train, args.val, args.test, args.budget, args.cutoff = 6, 2, 20, 15.0, 4.0
    from crystalspace.runtime import init_ray

    init_ray(num_cpus=2 if args.quick else None)
    entries, timings = [], {}
    for name in filter(None, args.models.split(",")):
        size = {"hidden": 16, "layers": 1} if args.quick else SIZES.get(name, {"hidden": 128, "layers": 3})
        cfg = make_mlff_config(
            None,
            {
                "data": args.data,
                "model": name,
                **size,
                "hparams": {"lmax": 2} if name == "nequip" else {},
                "cutoff": args.cutoff,
                "train_per_temperature": args.train,
                "val_per_temperature": args.val,
                "test_frames": args.test,
                "epochs": 1000,
                "batch_size": 4 if args.quick else 16,
                "lr": 1e-3,
                "plateau_patience": 3,
                "time_budget_s": args.budget,
                "use_gpu": gpu,
                "max_failures": 0,
                "out": str(out),
                "registry": str(out / "registry"),
            },
        )
        t0 = time.perf_counter()
        result = train_model(cfg)
        timings[name] = time.perf_counter() - t0
        m = result.metrics
        print(
            f"{name}: {m['epochs_run']} epochs in {timings[name]:.0f} s, best epoch {m['best_epoch']}, "
            f"val force MAE {m['val_force_mae']:.4f} eV/Å, R² {m['val_force_r2']:.3f} -> {result.entry}",
            flush=True,
        )
        entries.append(result.entry)
    if args.no_eval:
        return 0
    entries += [str(Path(e).resolve()) for e in filter(None, args.evaluate.split(","))]
    t0 = time.perf_counter()
    table = evaluate_models(
        entries,
        args.data,
        ["LGPS", "Li3PS4", "Li4GeS4"],
        out,
        n_test=args.test,
        device="cuda" if gpu else "cpu",
    )
    timings["evaluate"] = time.perf_counter() - t0
    text = format_table(table)
    header = (
        f"device: {torch.cuda.get_device_name(0) if gpu else 'cpu'}; train {args.train}/T + val {args.val}/T LGPS "
        f"frames (5 T), {args.budget:.0f} s training budget per model, rc {args.cutoff} Å, test {args.test} unseen "
        f"frames per material; wall times (s): {json.dumps({k: round(v) for k, v in timings.items()})}"
    )
    (out / "direct_prediction.md").write_text(header + "\n\n" + text + "\n")
    print(header)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
