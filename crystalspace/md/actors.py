"""Replicas as Ray actors: each :class:`ReplicaActor` owns a batch of replicas and a share of CPUs/GPU.

:func:`run_md` spreads the replicas of each material over actors (and so over nodes). Actors are
created with ``max_restarts`` and their ``run`` call with ``max_task_retries``: an actor that dies
is restarted by Ray, its retried ``run`` resumes from the batch's last checkpoint, and the
trajectory continues without a gap or a duplicate frame.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from crystalspace.md.replicas import MDProtocol, ReplicaSpec, replica_seed


class ReplicaActorImpl:
    """The actor's body (a plain class, wrapped by ``ray.remote`` in :func:`run_md`)."""

    def __init__(
        self,
        provider: str,
        provider_kwargs: dict[str, Any],
        structure: dict[str, Any],
        specs: list[ReplicaSpec],
        protocol: MDProtocol,
        out_dir: str,
        prefix: str,
        device: str = "cpu",
        crash_at_step: int | None = None,
    ) -> None:
        import torch

        from crystalspace.md.replicas import ReplicaBatch
        from crystalspace.potentials import get_provider

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.crash_at_step, self.out_dir, self.prefix = crash_at_step, Path(out_dir), prefix
        self.batch = ReplicaBatch(
            get_provider(provider, device, **provider_kwargs), structure["numbers"], structure["cell"],
            structure["positions"], specs, protocol, out_dir, prefix, source=provider, device=device,
            on_step=self._maybe_crash,
        )  # fmt: skip

    def _maybe_crash(self, step: int) -> None:
        """Test hook: die once (hard, no clean-up) at ``crash_at_step``."""
        marker = self.out_dir / f".crashed-{self.prefix}"
        if self.crash_at_step is not None and step == self.crash_at_step and not marker.exists():
            marker.touch()
            os._exit(1)

    def run(self) -> list[dict[str, Any]]:
        """Run (or resume) the batch to the end of the protocol; return the per-replica summary."""
        import ray

        self.batch.start()
        self.batch.run()
        node = ray.get_runtime_context().get_node_id()
        return [{**row, "node_id": node} for row in self.batch.summary()]

    def pid(self) -> int:
        return os.getpid()


def plan_replicas(materials: list[str], temperatures: list[float], repeats: int) -> list[ReplicaSpec]:
    """Every (material, T, run) replica with the reference's seeds and a global replica id."""
    specs, k = [], 0
    for m_index, material in enumerate(materials):
        for temp in temperatures:
            for run in range(repeats):
                specs.append(ReplicaSpec(material, float(temp), run, replica_seed(m_index, temp, run), k))
                k += 1
    return specs


def run_md(
    structures: dict[str, Any],
    temperatures: list[float],
    repeats: int,
    out_dir: str | os.PathLike[str],
    protocol: MDProtocol | None = None,
    provider: str = "pair",
    provider_kwargs: dict[str, Any] | None = None,
    actors_per_material: int = 2,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_restarts: int = 3,
    crash_at_step: int | None = None,
    spread: bool = True,
) -> list[dict[str, Any]]:
    """Run every (material, T, repeat) replica through Ray actors; write ``summary.json``.

    ``structures`` maps material name → ASE ``Atoms``. Replicas of one material are split evenly over
    ``actors_per_material`` actors, each holding ``num_cpus`` CPUs and ``num_gpus`` of a GPU (so
    several actors can share one GPU); ``spread`` places actors on as many nodes as possible.
    ``crash_at_step`` kills the first actor once (tests).
    """
    import ray

    from crystalspace.runtime import init_ray

    init_ray()
    protocol = protocol or MDProtocol()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = plan_replicas(list(structures), temperatures, repeats)
    remote: Any = ray.remote(ReplicaActorImpl)
    device = "cuda" if num_gpus > 0 else "cpu"
    handles: list[Any] = []
    calls: list[Any] = []
    for material, atoms in structures.items():
        mine = [s for s in specs if s.material == material]
        structure = {"numbers": np.asarray(atoms.numbers), "cell": np.asarray(atoms.cell[:]),
                     "positions": np.asarray(atoms.positions)}  # fmt: skip
        for k, chunk in enumerate(np.array_split(np.arange(len(mine)), actors_per_material)):
            if not len(chunk):
                continue
            actor = remote.options(
                num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_task_retries=max_restarts,
                scheduling_strategy="SPREAD" if spread else "DEFAULT",
            ).remote(
                provider, provider_kwargs or {}, structure, [mine[i] for i in chunk], protocol, str(out),
                f"{material}-a{k}", device, crash_at_step if not handles else None,
            )  # fmt: skip
            handles.append(actor)
            calls.append(actor.run.remote())
    start = time.perf_counter()
    summary = [
        row
        for rows in _wait_with_progress(calls, handles, out, len(specs), protocol, max_restarts)
        for row in rows
    ]
    wall = time.perf_counter() - start
    replica_ns = sum(r["last_step"] for r in summary) * protocol.dt_fs * 1e-6
    from crystalspace.potentials import provider_info

    (out / "model.json").write_text(json.dumps(provider_info(provider), indent=1))
    (out / "summary.json").write_text(json.dumps({
        "protocol": protocol.model_dump(), "provider": provider, "wall_s": wall,
        "ns_per_day": replica_ns / wall * 86400, "replicas": summary}, indent=1))  # fmt: skip
    return summary


def _wait_with_progress(
    calls: list[Any],
    actors: list[Any],
    out: Path,
    n_replicas: int,
    protocol: MDProtocol,
    max_restarts: int = 0,
) -> list[Any]:
    """Wait for the actors' ``run`` calls, showing MD steps done (read from the checkpoint step files).

    An actor is killed as soon as its call is done, so its CPUs/GPU go to actors still waiting for
    them (more actors than a small cluster holds at once). A call that fails because its actor was
    unreachable (its node died while Ray restarts it) is submitted again to the restarted actor, up
    to ``max_restarts`` times; ``run`` resumes from the batch's checkpoint.
    """
    import ray

    from crystalspace.runtime import Progress

    per_actor = max(1, -(-protocol.n_steps // protocol.checkpoint_every))
    bar = Progress(
        per_actor * len(calls),
        f"md: {n_replicas} replicas, {len(calls)} actors",
        unit="steps",
        step="checkpoints",
    )
    seen: dict[str, int] = {}
    pending = list(calls)
    results: dict[int, Any] = {}
    resubmitted = [0] * len(calls)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=2.0)
            for ref in ready:
                k = calls.index(ref)
                if resubmitted[k] < max_restarts and _actor_unavailable(ref):
                    resubmitted[k] += 1
                    calls[k] = actors[k].run.remote()
                    pending.append(calls[k])
                    continue
                results[k] = ray.get(ref)
                ray.kill(actors[k], no_restart=True)
            for path in (out / "checkpoints").glob("*.step"):
                try:
                    step = int(path.read_text() or 0)
                except (OSError, ValueError):
                    continue
                while seen.get(path.stem, 0) < step:
                    done = min(step, seen.get(path.stem, 0) + protocol.checkpoint_every)
                    bar.advance(done - seen.get(path.stem, 0))
                    seen[path.stem] = done
    finally:
        bar.close()
        for k, actor in enumerate(actors):
            if k not in results:
                ray.kill(actor, no_restart=True)
    return [results[k] for k in range(len(calls))]


def _actor_unavailable(ref: Any) -> bool:
    """True when ``ref`` failed only because its actor could not be reached (e.g. a lost node)."""
    import ray

    try:
        ray.get(ref, timeout=0)
    except ray.exceptions.ActorUnavailableError:
        return True
    except Exception:
        return False
    return False
