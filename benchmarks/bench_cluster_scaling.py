"""Simulated scaling: the same lake build on a local multi-node Ray cluster of 1, 2 and 4 nodes.

    python benchmarks/bench_cluster_scaling.py --out /tmp/scaling              # ternary space, 1/2/4 nodes
    python benchmarks/bench_cluster_scaling.py --quick --out /tmp/scaling      # 16 elements (CI smoke)

Each node count runs in a fresh process on a fresh ``ray.cluster_utils.Cluster``: a head with no
CPUs (it only hosts the driver) plus N worker nodes of ``--cpus-per-node`` CPUs each, so the
shard writers run on the worker nodes exactly as on a real cluster (one actor per CPU, each
writing its own shard files to the shared lake path). Writes ``cluster_scaling.csv``,
``cluster_scaling.md`` and ``cluster_scaling.png``; checks every lake's counts against
``space count`` (exit status 1 on a mismatch).

On a machine with fewer cores than nodes × CPUs the nodes share the cores: the run then shows
the scheduling/placement overhead and that the result is identical for any node count, not a
speed-up (see docs/SCALING.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

QUICK_ELEMENTS = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Zn,Sn,Fe"


def run_one(nodes: int, cpus: int, lake: str, overrides: dict[str, str]) -> dict[str, float]:
    """Build ``lake`` on a fresh local cluster of ``nodes`` worker nodes (this process only)."""
    import ray
    from ray.cluster_utils import Cluster

    from crystalspace.space.build import build_lake
    from crystalspace.space.config import make_space_config
    from crystalspace.space.engine import Space

    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=cpus, object_store_memory=200_000_000)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    startup = time.perf_counter() - t0
    config = make_space_config(overrides=overrides)
    report = build_lake(config, lake)
    space = Space.load(config)
    expected = sum(space.count(k).compositions for k in config.arities)
    got = sum(t["compositions"] for t in report.totals.values())
    size = sum(p.stat().st_size for p in Path(lake).rglob("*.parquet"))
    ray.shutdown()
    cluster.shutdown()
    return {
        "nodes": nodes,
        "cpus": nodes * cpus,
        "startup_s": round(startup, 2),
        "build_s": round(report.seconds, 2),
        "shards": report.shards_built,
        "compositions": got,
        "exact": int(got == expected and report.complete),
        "compositions_per_s": round(got / report.seconds),
        "mb_written": round(size / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,2,4")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--arity", default="2,3")
    parser.add_argument("--elements", default=None, help="element pool [all 103; --quick: 16]")
    parser.add_argument("--shard-rows", type=int, default=400_000)
    parser.add_argument("--quick", action="store_true", help="16 elements, small shards (CI smoke)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    overrides = {"arities": args.arity, "shard_rows": str(args.shard_rows)}
    if args.quick:
        overrides.update(elements=QUICK_ELEMENTS, shard_rows="4000")
    elif args.elements:
        overrides["elements"] = args.elements
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one is not None:
        lake = args.out / f"lake-{args.one}"
        shutil.rmtree(lake, ignore_errors=True)
        print("RESULT " + json.dumps(run_one(args.one, args.cpus_per_node, str(lake), overrides)))
        shutil.rmtree(lake, ignore_errors=True)
        return 0
    rows = []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    for n in [int(x) for x in args.nodes.split(",")]:
        cmd = [sys.executable, __file__, "--one", str(n), "--out", str(args.out),
               "--cpus-per-node", str(args.cpus_per_node), "--arity", args.arity,
               "--shard-rows", str(args.shard_rows)] + (["--quick"] if args.quick else []) + (
               ["--elements", args.elements] if args.elements else [])  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            print(res.stdout[-2000:], res.stderr[-4000:], file=sys.stderr)
            return 1
        rows.append(json.loads(line[-1][7:]))
        print(f"{n} node(s): {rows[-1]}", flush=True)
    base = rows[0]["build_s"]
    for r in rows:
        r["speedup"] = round(base / r["build_s"], 2)
    _write(rows, args.out, os.cpu_count() or 1)
    return 0 if all(r["exact"] for r in rows) else 1


def _write(rows: list[dict], out: Path, cores: int) -> None:
    with (out / "cluster_scaling.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cols = ["nodes", "cpus", "startup_s", "build_s", "speedup", "shards", "compositions",
            "compositions_per_s", "mb_written", "exact"]  # fmt: skip
    lines = [f"Machine: {cores} cores.", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += [
        "| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols) + " |"
        for r in rows
    ]
    (out / "cluster_scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    nodes = [r["nodes"] for r in rows]
    ax.plot(nodes, [r["speedup"] for r in rows], "o-", label=f"measured ({cores} cores)")
    ax.plot(nodes, [min(n * rows[0]["cpus"], cores) / rows[0]["cpus"] for n in nodes], "k--",
            label="ideal, capped by cores")  # fmt: skip
    ax.plot(nodes, nodes, ":", color="grey", label="ideal with a core per CPU")
    ax.set_xlabel("worker nodes")
    ax.set_ylabel("speed-up vs 1 node")
    ax.set_xticks(nodes)
    ax.legend(fontsize=8)
    ax.set_title("Lake build on a local multi-node Ray cluster")
    fig.tight_layout()
    tmp = out / ".cluster_scaling.png"
    fig.savefig(tmp, dpi=120, format="png")
    tmp.rename(out / "cluster_scaling.png")


if __name__ == "__main__":
    sys.exit(main())
