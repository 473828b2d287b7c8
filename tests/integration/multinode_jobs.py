"""Failure scenarios on a multi-node local Ray cluster (``ray.cluster_utils.Cluster``).

Run one per process (each builds its own cluster):
``python tests/integration/multinode_jobs.py NAME DIR``. The last stdout line is ``RESULT <json>``
for tests/integration/test_cluster_failures.py to check. Every cluster is a head with no CPUs (it
only hosts the driver's control work) plus three 1-CPU worker nodes, so losing one worker node
leaves the job somewhere to go. A script, not a test module: it finds tests/data from its own path.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

ELEMENTS = "Li,Be,B,C,N,O,F,Na,Mg,Al,Si,P,S,Zn,Sn,Fe"
NODE = {"num_cpus": 1, "object_store_memory": 150_000_000}


def make_cluster(workers: int = 3) -> tuple[Cluster, list[Any]]:
    """A head with 0 CPUs and ``workers`` 1-CPU nodes; the driver connects to it."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": 150_000_000, "include_dashboard": False},
    )
    nodes = [cluster.add_node(**NODE) for _ in range(workers)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    return cluster, nodes


def busy_node(nodes: list[Any]) -> Any:
    """A worker node whose CPU is in use (it hosts an actor or a task of the job)."""
    free = ray._private.state.available_resources_per_node()
    for node in nodes:
        if free.get(node.node_id, {}).get("CPU", 0.0) < 1.0:  # the key is absent when all is used
            return node
    return None


def kill_when(
    cluster: Cluster,
    nodes: list[Any],
    ready: Callable[[], bool],
    timeout: float = 240,
    pick: Callable[[list[Any]], Any] = busy_node,
) -> dict[str, Any]:
    """Wait until ``ready()``, then kill the node ``pick`` names (a busy worker node by default)
    without a graceful shutdown."""
    deadline = time.time() + timeout
    while time.time() < deadline and not ready():
        time.sleep(0.05)
    victim = None
    while time.time() < deadline and victim is None:
        victim = pick(nodes)
        time.sleep(0.05)
    if victim is None:
        return {"killed": None}
    cluster.remove_node(victim, allow_graceful=False)
    nodes.remove(victim)
    return {"killed": victim.node_id, "at": time.time()}


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def lake_node_death(out: Path) -> dict[str, Any]:
    """A worker node dies during a lake build; the build still completes, exact and duplicate-free."""
    from crystalspace.lake.duck import connect
    from crystalspace.space.build import build_lake
    from crystalspace.space.config import make_space_config
    from crystalspace.space.engine import Space

    cluster, nodes = make_cluster()
    config = make_space_config(overrides={"arities": "2,3", "elements": ELEMENTS, "shard_rows": 2000})
    lake = out / "lake"
    thread, box = in_thread(lambda: build_lake(config, str(lake)))
    kill = kill_when(cluster, nodes, lambda: len(list(lake.glob("arity=3/*/*.parquet"))) >= 10)
    kill["shards_before"] = len(list(lake.glob("arity=*/*/*.parquet")))
    thread.join(timeout=400)
    result: dict[str, Any] = {**kill, "error": box.get("error")}
    if "value" in box:
        report = box["value"]
        space = Space.load(config)
        con = connect(str(lake))
        result["complete"] = report.complete
        result["shards_total"] = sum(len(space.shards(k)) for k in (2, 3))
        result["shards_after"] = len(list(lake.glob("arity=*/*/*.parquet")))
        result["expected"] = [space.count(k).compositions for k in (2, 3)]
        result["rows"] = [con.execute("SELECT count(*) FROM compositions WHERE arity = ?", [k]).fetchone()[0]
                          for k in (2, 3)]  # fmt: skip
        result["distinct"] = con.execute(
            "SELECT count(DISTINCT (arity, z1, z2, z3, n1, n2, n3)) FROM compositions"
        ).fetchone()[0]
        result["manifest_totals"] = [report.totals[k]["compositions"] for k in (2, 3)]
        result["tmp_left"] = len(list(lake.rglob("*.tmp")))
    return result


def _tiny_task() -> Any:
    """A tiny least-squares model as a runner task (one checkpoint per epoch, resuming from the
    latest one) that logs where each worker process starts and which epoch's checkpoint persisted."""
    import os

    import torch

    from crystalspace.training import Task

    class Tiny(Task):
        def __init__(self, config: dict[str, Any], session: Any) -> None:
            torch.manual_seed(0)
            self.config, self.epochs, self.start = config, config["epochs"], 0
            self.x = torch.linspace(-1, 1, 64)[:, None]
            self.model = torch.nn.Linear(1, 1)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
            self.loss = float("nan")

        def load_state(self, state: dict[str, Any]) -> None:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["opt"])
            self.start = state["epoch"] + 1

        def save_state(self) -> dict[str, Any]:
            return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "loss": self.loss}

        def train_epoch(self, epoch: int) -> dict[str, Any]:
            log = Path(self.config["log"])
            if epoch == self.start:
                node = ray.get_runtime_context().get_node_id()
                with open(log, "a") as f:
                    f.write(json.dumps({"start": epoch, "node": node, "pid": os.getpid()}) + "\n")
            else:  # the previous epoch's report (and checkpoint) has returned
                log.with_suffix(".reported").write_text(str(epoch - 1))
            for _ in range(20):
                self.opt.zero_grad()
                loss = torch.nn.functional.mse_loss(self.model(self.x), 3 * self.x + 0.5)
                loss.backward()
                self.opt.step()
            time.sleep(self.config["sleep"])
            self.loss = float(loss)
            return {"loss": self.loss}

    return Tiny


def train_worker_death(out: Path) -> dict[str, Any]:
    """The node of the (only) Ray Train worker dies; the run resumes from its last checkpoint."""
    from crystalspace.training import RunSettings, run_training

    cluster, nodes = make_cluster()
    log = out / "starts.jsonl"
    settings = RunSettings(name="tiny", storage_path=str(out / "ray"), num_workers=1, max_failures=2)
    epochs = 8
    thread, box = in_thread(
        lambda: run_training(_tiny_task(), {"epochs": epochs, "sleep": 1.0, "log": str(log)}, settings)
    )
    reported = log.with_suffix(".reported")

    def worker_node(alive: list[Any]) -> Any:  # the Train worker's own node (another may be busy briefly)
        node = json.loads(log.read_text().splitlines()[-1])["node"]
        return next((n for n in alive if n.node_id == node), None)

    kill = kill_when(cluster, nodes, lambda: reported.exists() and int(reported.read_text() or 0) >= 2,
                     pick=worker_node)  # fmt: skip
    thread.join(timeout=400)
    starts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    result: dict[str, Any] = {**kill, "error": box.get("error"), "starts": starts, "epochs": epochs}
    if "value" in box:
        state = box["value"].state
        result["final_epoch"] = state["epoch"]
        result["final_loss"] = state["loss"]
        result["weight"] = float(state["model"]["weight"].item())
    return result


def md_actor_death(out: Path) -> dict[str, Any]:
    """The node of an MD replica actor dies; Ray restarts the actor and its replicas resume."""
    from ase.io import read

    from crystalspace.md.actors import run_md
    from crystalspace.md.replicas import MDProtocol
    from crystalspace.md.trajectory import read_trajectory

    cluster, nodes = make_cluster()
    atoms = read(Path(__file__).resolve().parents[1] / "data" / "mlff_subset" / "Li3PS4_chgnet_relaxed.cif")
    protocol = MDProtocol(
        ramp_ps=0.1, production_ps=1.5, checkpoint_every=20, record_every=10, record_every_ramp=10
    )
    md = out / "md"
    thread, box = in_thread(
        lambda: run_md({"Li3PS4": atoms}, [800.0], 2, md, protocol, actors_per_material=2)
    )

    def checkpointed() -> bool:
        steps = [int(p.read_text() or 0) for p in (md / "checkpoints").glob("*.step")] if md.exists() else []
        return len(steps) == 2 and min(steps) >= 200

    kill = kill_when(cluster, nodes, checkpointed)
    thread.join(timeout=400)
    result: dict[str, Any] = {**kill, "error": box.get("error"), "n_steps": protocol.n_steps}
    if "value" in box:
        summary = box["value"]
        frames = read_trajectory(md).to_pandas()
        result["status"] = [r["status"] for r in summary]
        result["last_step"] = [r["last_step"] for r in summary]
        result["nodes"] = sorted({r["node_id"] for r in summary})
        result["gaps"] = {
            str(rep): sorted({int(d) for d in g.step.diff().dropna()}) for rep, g in frames.groupby("replica")
        }
        result["first_last"] = {
            str(rep): [int(g.step.min()), int(g.step.max())] for rep, g in frames.groupby("replica")
        }
    return result


SCENARIOS = {"lake": lake_node_death, "train": train_worker_death, "md": md_actor_death}

if __name__ == "__main__":
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    res = SCENARIOS[sys.argv[1]](out)
    res["seconds"] = round(time.time() - t0, 1)
    print("RESULT " + json.dumps(res), flush=True)
    ray.shutdown()
