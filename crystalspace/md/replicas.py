"""The batched MD engine: the study's protocol for a batch of replicas of one material.

Protocol (as the reference trajectories were made): Maxwell–Boltzmann momenta at ``t0_K``, zero total
momentum; a ramp of ``ramp_ps`` with velocity Verlet and velocity rescaling every ``rescale_every``
steps to ``T(step) = t0 + (T - t0)·step/n_ramp``; then production with a Nosé–Hoover chain
(or Langevin, or NVE). Step 0 is the initial state. Frames go to a :class:`TrajectoryWriter`;
checkpoints (state, thermostat, replica status) are written every ``checkpoint_every`` steps.
Replicas that blow up (NaN energy/forces, atoms fused closer than ``fusion_distance``, temperature
above ``runaway_factor`` × target) stop with a recorded reason while the others continue.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from crystalspace.md.integrators import (
    FS,
    MDState,
    NoseHooverChain,
    langevin_step,
    maxwell_boltzmann,
    nhc_step,
    rescale_to,
    velocity_verlet,
)
from crystalspace.md.trajectory import TrajectoryWriter, load_checkpoint, save_checkpoint
from crystalspace.potentials import ForceProvider
from crystalspace.potentials.pair import image_shifts


class MDProtocol(BaseModel):
    """MD settings (defaults: the study's / reference's protocol, production shortened to 10 ps)."""

    dt_fs: float = 2.0
    t0_K: float = 100.0
    ramp_ps: float = 5.0
    rescale_every: int = 10
    production_ps: float = 10.0
    thermostat: Literal["nhc", "langevin", "nve"] = "nhc"
    tdamp_steps: float = 100.0
    tchain: int = 3
    tloop: int = 1
    langevin_friction_per_ps: float = 10.0
    record_every: int = 10
    record_every_ramp: int = 25
    checkpoint_every: int = 500
    fusion_distance: float = Field(default=0.6, description="Å; closer atoms = atom fusion")
    runaway_factor: float = Field(default=3.0, description="stop when T_inst > factor × target + 300 K")
    check_every: int = 10
    dtype: Literal["float64", "float32"] = "float64"

    @property
    def n_ramp(self) -> int:
        return round(self.ramp_ps * 1000 / self.dt_fs)

    @property
    def n_steps(self) -> int:
        return self.n_ramp + round(self.production_ps * 1000 / self.dt_fs)


@dataclass
class ReplicaSpec:
    """One replica: which material, target temperature, run index and velocity seed."""

    material: str
    temperature_K: float
    run: int
    seed: int
    replica: int  # global replica id


def replica_seed(material_index: int, temperature_K: float, run: int) -> int:
    """The reference's seed rule: ``SeedSequence([material, T, run]).generate_state(1)[0]``."""
    return int(np.random.SeedSequence([material_index, int(temperature_K), run]).generate_state(1)[0])


def min_distances(positions: torch.Tensor, cell: torch.Tensor, cutoff: float = 3.0) -> torch.Tensor:
    """The shortest interatomic distance per replica ``[R]`` (periodic images included)."""
    shifts = image_shifts(cell, cutoff).to(positions.dtype)
    offsets = torch.einsum("sk,rkj->rsj", shifts, cell.to(positions.dtype))
    diff = positions[:, None, :, None, :] - positions[:, None, None, :, :] + offsets[:, :, None, None, :]
    r2 = (diff * diff).sum(-1)
    n = positions.shape[1]
    self_pair = (shifts.abs().sum(-1) == 0)[:, None, None] & torch.eye(
        n, dtype=torch.bool, device=positions.device
    )
    r2 = torch.where(self_pair[None], torch.full_like(r2, math.inf), r2)
    return r2.flatten(1).min(dim=1).values.sqrt()


class ReplicaBatch:
    """A batch of replicas of one material integrated in lock step with one batched force call."""

    def __init__(
        self,
        provider: ForceProvider,
        numbers: np.ndarray,
        cell: np.ndarray,
        positions: np.ndarray,
        specs: list[ReplicaSpec],
        protocol: MDProtocol,
        out_dir: str | os.PathLike[str],
        prefix: str,
        source: str = "",
        device: str = "cpu",
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        from ase.data import atomic_masses

        self.protocol, self.specs, self.source, self.on_step = protocol, specs, source, on_step
        self.dtype = getattr(torch, protocol.dtype)
        self.device = torch.device(device)
        r = len(specs)
        self.numbers = torch.as_tensor(np.asarray(numbers, dtype=np.int64), device=self.device)
        self.cell = torch.as_tensor(
            np.asarray(cell, dtype=np.float64).reshape(3, 3), dtype=self.dtype, device=self.device
        )[None].repeat(r, 1, 1)
        self.provider = provider
        masses = torch.as_tensor(
            atomic_masses[np.asarray(numbers, dtype=int)], dtype=self.dtype, device=self.device
        )
        pos = torch.as_tensor(
            np.asarray(positions, dtype=np.float64).reshape(-1, 3), dtype=self.dtype, device=self.device
        )[None].repeat(r, 1, 1)
        momenta = maxwell_boltzmann(masses, protocol.t0_K, [s.seed for s in specs], self.dtype)
        self.targets = torch.tensor([s.temperature_K for s in specs], dtype=self.dtype, device=self.device)
        self.state = MDState(pos, momenta.to(self.device), masses, torch.zeros(r), torch.zeros_like(pos))
        self.nhc = self._new_nhc()
        self.gen = torch.Generator().manual_seed(int(specs[0].seed) if specs else 0)
        self.active = np.ones(r, dtype=bool)
        self.reasons: list[str | None] = [None] * r
        self.stopped_at: list[int | None] = [None] * r
        self.step = 0
        self.writer = TrajectoryWriter(out_dir, prefix)
        self.ckpt_path = Path(out_dir) / "checkpoints" / f"{prefix}.pt"

    # ------------------------------------------------------------------------------ set-up/resume
    def _new_nhc(self) -> NoseHooverChain:
        p = self.protocol
        return NoseHooverChain(
            self.targets, int(self.numbers.numel()), p.tdamp_steps * p.dt_fs * FS, p.tchain, p.tloop
        )

    def _forces(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, f = self.provider(self.numbers, positions, self.cell)
        return e.to(self.dtype), f.to(self.dtype)

    def start(self) -> None:
        """Resume from the checkpoint if there is one, else evaluate and record step 0."""
        ckpt = load_checkpoint(self.ckpt_path)
        if ckpt is not None:
            self._restore(ckpt)
            return
        self.writer.truncate_after(-1)
        self.state.energy, self.state.forces = self._forces(self.state.positions)
        self._check()
        self._record()

    def _restore(self, ckpt: dict[str, Any]) -> None:
        s = self.state
        s.positions, s.momenta = ckpt["positions"].to(self.device), ckpt["momenta"].to(self.device)
        s.energy, s.forces = ckpt["energy"].to(self.device), ckpt["forces"].to(self.device)
        self.nhc.eta, self.nhc.p_eta = ckpt["eta"].to(self.device), ckpt["p_eta"].to(self.device)
        self.active = np.asarray(ckpt["active"], dtype=bool)
        self.reasons, self.stopped_at = list(ckpt["reasons"]), list(ckpt["stopped_at"])
        self.step = int(ckpt["step"])
        self.gen.set_state(ckpt["rng"])
        self.writer.truncate_after(self.step)

    def checkpoint(self) -> None:
        """Flush the frames so far, then save the state (in this order: see :mod:`.trajectory`)."""
        self.writer.flush()
        s = self.state
        save_checkpoint(self.ckpt_path, {
            "step": self.step, "positions": s.positions.cpu(), "momenta": s.momenta.cpu(),
            "energy": s.energy.cpu(), "forces": s.forces.cpu(), "eta": self.nhc.eta.cpu(),
            "p_eta": self.nhc.p_eta.cpu(), "active": self.active.tolist(), "reasons": list(self.reasons),
            "stopped_at": list(self.stopped_at), "rng": self.gen.get_state(),
        })  # fmt: skip
        self.ckpt_path.with_suffix(".step").write_text(str(self.step))  # for the driver's progress

    # ------------------------------------------------------------------------------------ running
    def run(self, n_steps: int | None = None) -> None:
        """Advance to the protocol's last step (or ``n_steps`` more), checkpointing on the way."""
        p = self.protocol
        end = p.n_steps if n_steps is None else min(p.n_steps, self.step + n_steps)
        while self.step < end and self.active.any():
            self.advance()
            if self.step % p.checkpoint_every == 0 or self.step == end:
                self.checkpoint()
            if self.on_step is not None:
                self.on_step(self.step)
        if self.step < end:  # every replica stopped
            self.checkpoint()

    def advance(self) -> None:
        """One MD step for every replica (stopped replicas are held still)."""
        p, s = self.protocol, self.state
        dt = p.dt_fs * FS
        frozen = (s.positions.clone(), s.momenta.clone()) if not self.active.all() else None
        self.step += 1
        if self.step <= p.n_ramp or p.thermostat == "nve":
            velocity_verlet(s, self._forces, dt)
            if self.step <= p.n_ramp and self.step % p.rescale_every == 0:
                rescale_to(s, p.t0_K + (self.targets - p.t0_K) * self.step / p.n_ramp)
        elif p.thermostat == "nhc":
            nhc_step(s, self._forces, dt, self.nhc)
        else:
            friction = p.langevin_friction_per_ps / (1000 * FS)
            langevin_step(s, self._forces, dt, self.targets, friction, self.gen)
        if frozen is not None:
            keep = torch.as_tensor(~self.active, device=self.device)[:, None, None]
            s.positions = torch.where(keep, frozen[0], s.positions)
            s.momenta = torch.where(keep, frozen[1], s.momenta)
        if self.step % p.check_every == 0 or not torch.isfinite(s.forces).all():
            self._check()
        if self._recording(self.step):
            self._record()

    def _recording(self, step: int) -> bool:
        p = self.protocol
        return step % (p.record_every_ramp if step <= p.n_ramp else p.record_every) == 0

    def _check(self) -> None:
        s, p = self.state, self.protocol
        finite = (torch.isfinite(s.energy) & torch.isfinite(s.forces).flatten(1).all(1)
                  & torch.isfinite(s.positions).flatten(1).all(1)).cpu().numpy()  # fmt: skip
        temp = s.temperature().cpu().numpy()
        dmin = (
            min_distances(torch.nan_to_num(s.positions), self.cell, max(3.0, p.fusion_distance)).cpu().numpy()
        )
        runaway = p.runaway_factor * np.maximum(self.targets.cpu().numpy(), p.t0_K) + 300
        for i in np.flatnonzero(self.active):
            reason = None
            if not finite[i]:
                reason = "nan_forces"
            elif dmin[i] < p.fusion_distance:
                reason = f"atom_fusion (d_min {dmin[i]:.2f} Å)"
            elif temp[i] > runaway[i]:
                reason = f"temperature_runaway ({temp[i]:.0f} K)"
            if reason:
                self.active[i], self.reasons[i], self.stopped_at[i] = False, reason, self.step

    def _record(self) -> None:
        s, p = self.state, self.protocol
        pos = s.positions.detach().cpu().numpy()
        cell = self.cell[0].detach().cpu().numpy().astype(np.float64)
        frac = pos @ np.linalg.inv(cell)
        wrapped = (frac - np.floor(frac)) @ cell
        temp = s.temperature().cpu().numpy()
        energy, forces = s.energy.detach().cpu().numpy(), s.forces.detach().cpu().numpy()
        numbers = self.numbers.cpu().numpy().astype(np.uint8)
        phase = "ramp" if self.step <= p.n_ramp else "production"
        rows = []
        for i in np.flatnonzero(self.active):
            spec = self.specs[i]
            rows.append({
                "id": f"{spec.material}-{spec.temperature_K:g}K-r{spec.replica}-{self.step}",
                "numbers": numbers, "positions": wrapped[i].astype(np.float32).ravel(),
                "cell": cell.ravel(), "pbc": np.ones(3, dtype=bool), "energy": float(energy[i]),
                "forces": forces[i].astype(np.float32).ravel(), "stress": None, "source": self.source,
                "material": spec.material, "temperature_K": round(spec.temperature_K),
                "run": int(spec.run), "replica": int(spec.replica), "seed": int(spec.seed),
                "step": int(self.step), "time_fs": float(self.step * p.dt_fs), "phase": phase,
                "temperature_inst_K": float(temp[i]),
                "unwrapped_positions": pos[i].astype(np.float32).ravel(),
            })  # fmt: skip
        self.writer.add(rows)

    def summary(self) -> list[dict[str, Any]]:
        """Per-replica outcome: status, reason and step of a stop, final temperature."""
        temp = self.state.temperature().cpu().numpy()
        return [
            {"replica": s.replica, "material": s.material, "temperature_K": s.temperature_K, "run": s.run,
             "status": "ok" if self.active[i] else "stopped", "reason": self.reasons[i],
             "stopped_at_step": self.stopped_at[i], "last_step": self.step, "final_temperature_K": float(temp[i])}
            for i, s in enumerate(self.specs)
        ]  # fmt: skip
