"""Batched MD through Ray actors with the built-in pair potential, then the Li diffusion analysis.

Runs LGPS (50 atoms) at 800 and 1200 K, two replicas each, split over two Ray actors, with the
study's protocol shortened (0.1 ps ramp from 100 K, 0.3 ps Nosé–Hoover production), reads the
Parquet trajectory back and fits Li MSDs. A trained MLFF plugs in through ``provider=``.

    python examples/md_replicas.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import ray
from ase.io import read

from crystalspace.md.actors import run_md
from crystalspace.md.analysis import diffusion_table
from crystalspace.md.replicas import MDProtocol
from crystalspace.md.trajectory import read_trajectory

CIF = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "LGPS_chgnet_relaxed.cif"


def main() -> None:
    # a private local cluster (never attach to someone else's `ray start`)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    protocol = MDProtocol(
        ramp_ps=0.1, production_ps=0.3, record_every=5, record_every_ramp=5, checkpoint_every=50
    )
    with tempfile.TemporaryDirectory() as out:
        summary = run_md({"LGPS": read(CIF)}, [800.0, 1200.0], 2, out, protocol, provider="pair")
        ok = sum(r["status"] == "ok" for r in summary)
        print(f"replicas: {ok} ok, {len(summary) - ok} stopped")
        frames = read_trajectory(out).to_pandas()
        per_replica = frames.groupby("replica").step.apply(lambda s: len(s) if set(np.diff(s)) == {5} else -1)
        print(f"frames per replica: {sorted(set(per_replica))}")
        table = diffusion_table(frames, fit_ps=(0.05, 0.2))
        for row in table.itertuples():
            print(
                f"{row.material} {row.temperature_K} K run {row.run}: <T> {row.T_mean_K:.0f} K, D_Li {row.D_cm2_s:.2e} cm2/s"
            )


if __name__ == "__main__":
    main()
