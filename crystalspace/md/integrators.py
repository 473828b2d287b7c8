"""Integrators batched over replicas: velocity Verlet, Nosé–Hoover chain NVT, Langevin, ramp rescaling.

Everything is in ASE units (Å, amu, eV, time unit ``ase.units.fs``-based) so a batch of one replica
steps exactly like ASE's own integrators. Arrays: positions/momenta/forces ``[R, N, 3]``, masses
``[N]``, per-replica target temperatures ``[R]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

KB = 8.617330337217213e-05  # eV/K, ase.units.kB (CODATA 2014)
FS = 0.09822694788464063  # ase.units.fs: 1 fs in ASE time units

Forces = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""positions [R, N, 3] → (energy [R], forces [R, N, 3]) for fixed numbers and cells."""

# Suzuki–Yoshida 4th-order weights, as ase.md.nose_hoover_chain uses them
_SY4 = (1 / (2 - 2 ** (1 / 3)), -(2 ** (1 / 3)) / (2 - 2 ** (1 / 3)), 1 / (2 - 2 ** (1 / 3)))


@dataclass
class MDState:
    """The dynamical state of ``R`` replicas of one composition (ASE units)."""

    positions: torch.Tensor  # [R, N, 3] unwrapped Cartesian, Å
    momenta: torch.Tensor  # [R, N, 3] amu·Å/t_ASE
    masses: torch.Tensor  # [N] amu
    energy: torch.Tensor  # [R] eV
    forces: torch.Tensor  # [R, N, 3] eV/Å

    def kinetic_energy(self) -> torch.Tensor:
        """Kinetic energy per replica ``[R]`` (eV)."""
        return 0.5 * (self.momenta**2 / self.masses[None, :, None]).sum(dim=(1, 2))

    def temperature(self) -> torch.Tensor:
        """Instantaneous temperature ``[R]`` with 3N degrees of freedom (ASE's convention)."""
        return 2 * self.kinetic_energy() / (3 * self.masses.numel() * KB)


def velocity_verlet(state: MDState, forces: Forces, dt: float) -> None:
    """One velocity-Verlet step in place (``dt`` in ASE time units)."""
    state.momenta += 0.5 * dt * state.forces
    state.positions += dt * state.momenta / state.masses[None, :, None]
    state.energy, state.forces = forces(state.positions)
    state.momenta += 0.5 * dt * state.forces


@dataclass
class NoseHooverChain:
    """A Nosé–Hoover chain thermostat per replica, step for step as ``ase.md.nose_hoover_chain``.

    Masses ``Q_0 = 3 N kT τ²``, ``Q_j = kT τ²``; each half step integrates the chain with the
    Suzuki–Yoshida 4th-order scheme ``tloop`` times. The chain sees the momenta only through the
    kinetic energy and acts on them only by a scaling, so it runs on the CPU in float64 on ``[R]``
    numbers (``eta``/``p_eta`` are CPU float64 tensors) and the momenta are scaled once per half
    step: two small device transfers instead of hundreds of tiny device kernels per MD step.
    """

    temperature_K: torch.Tensor  # [R]
    n_atoms: int
    tdamp: float  # ASE time units
    tchain: int = 3
    tloop: int = 1
    eta: torch.Tensor = field(init=False)
    p_eta: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        kt = KB * self.temperature_K.detach().cpu().double().numpy()
        self.kt = kt
        q = np.repeat((kt * self.tdamp**2)[:, None], self.tchain, axis=1)
        q[:, 0] *= 3 * self.n_atoms
        self.Q = q
        self.eta = torch.zeros(q.shape, dtype=torch.float64)
        self.p_eta = torch.zeros(q.shape, dtype=torch.float64)

    def energy(self) -> torch.Tensor:
        """Thermostat energy per replica (for the conserved quantity), CPU float64."""
        eta, p_eta = self._arrays()
        e = (
            3 * self.n_atoms * self.kt * eta[:, 0]
            + self.kt * eta[:, 1:].sum(-1)
            + (0.5 * p_eta**2 / self.Q).sum(-1)
        )
        return torch.from_numpy(e)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``eta``, ``p_eta`` as float64 numpy views (moved to the CPU once, e.g. after a restore)."""
        if self.eta.device.type != "cpu" or self.eta.dtype != torch.float64:
            self.eta = self.eta.detach().cpu().double()
        if self.p_eta.device.type != "cpu" or self.p_eta.dtype != torch.float64:
            self.p_eta = self.p_eta.detach().cpu().double()
        return self.eta.numpy(), self.p_eta.numpy()

    def half_step(self, momenta: torch.Tensor, masses: torch.Tensor, delta: float) -> torch.Tensor:
        """Integrate the chain over ``delta`` and return the rescaled momenta."""
        kin2 = (momenta**2 / masses[None, :, None]).sum(dim=(1, 2)).double().cpu().numpy()  # 2 K per replica
        scale = np.ones_like(kin2)
        for _ in range(self.tloop):
            for w in _SY4:
                scale = self._loop(kin2, scale, w * delta / self.tloop)
        return momenta * torch.as_tensor(scale, dtype=momenta.dtype).to(momenta.device)[:, None, None]

    def _p_eta_j(self, kin2: np.ndarray, j: int, d2: float, d4: float) -> None:
        p_eta, q = self.p_eta.numpy(), self.Q
        last = j == self.tchain - 1
        if not last:
            p_eta[:, j] *= np.exp(-d4 * p_eta[:, j + 1] / q[:, j + 1])
        g = kin2 - 3 * self.n_atoms * self.kt if j == 0 else p_eta[:, j - 1] ** 2 / q[:, j - 1] - self.kt
        p_eta[:, j] += d2 * g
        if not last:
            p_eta[:, j] *= np.exp(-d4 * p_eta[:, j + 1] / q[:, j + 1])

    def _loop(self, kin2: np.ndarray, scale: np.ndarray, delta: float) -> np.ndarray:
        """One chain sweep; ``kin2 · scale²`` is the current 2K. Returns the updated momentum scale."""
        eta, p_eta = self._arrays()
        for j in reversed(range(self.tchain)):
            self._p_eta_j(kin2 * scale**2, j, delta / 2, delta / 4)
        eta += delta * p_eta / self.Q
        scale = scale * np.exp(-delta * p_eta[:, 0] / self.Q[:, 0])
        for j in range(self.tchain):
            self._p_eta_j(kin2 * scale**2, j, delta / 2, delta / 4)
        return scale


def nhc_step(state: MDState, forces: Forces, dt: float, nhc: NoseHooverChain) -> None:
    """One NVT step as ``NoseHooverChainNVT.step``: NHC(dt/2), p+=F dt/2, q+=p/m dt, F(q), p+=F dt/2, NHC(dt/2)."""
    state.momenta = nhc.half_step(state.momenta, state.masses, dt / 2)
    velocity_verlet(state, forces, dt)
    state.momenta = nhc.half_step(state.momenta, state.masses, dt / 2)


def langevin_step(
    state: MDState,
    forces: Forces,
    dt: float,
    temperature_K: torch.Tensor,
    friction: float,
    gen: torch.Generator,
) -> None:
    """One BAOAB Langevin step (``friction`` in 1/ASE-time) at per-replica ``temperature_K``."""
    m = state.masses[None, :, None]
    state.momenta += 0.5 * dt * state.forces
    state.positions += 0.5 * dt * state.momenta / m
    c1 = torch.exp(torch.tensor(-friction * dt, dtype=state.momenta.dtype))
    sigma = torch.sqrt((1 - c1**2) * m * KB * temperature_K[:, None, None].to(state.momenta.dtype))
    noise = torch.randn(state.momenta.shape, generator=gen, dtype=state.momenta.dtype).to(
        state.momenta.device
    )
    state.momenta = c1 * state.momenta + sigma * noise
    state.positions += 0.5 * dt * state.momenta / m
    state.energy, state.forces = forces(state.positions)
    state.momenta += 0.5 * dt * state.forces


def rescale_to(state: MDState, temperature_K: torch.Tensor) -> None:
    """Rescale each replica's velocities to the target temperature ``[R]`` (the ramp's thermostat)."""
    current = state.temperature().clamp_min(1e-12)
    state.momenta *= torch.sqrt(temperature_K.to(current.dtype) / current)[:, None, None]


def maxwell_boltzmann(
    masses: torch.Tensor, temperature_K: float, seeds: list[int], dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Momenta ``[R, N, 3]`` drawn as ``ase.md.velocitydistribution.MaxwellBoltzmannDistribution``
    with ``np.random.default_rng(seed)`` per replica, then total momentum removed (``Stationary``)."""
    import numpy as np

    m = masses.detach().cpu().numpy()
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        p = rng.standard_normal((m.size, 3)) * np.sqrt(m * KB * temperature_K)[:, None]
        p -= m[:, None] * p.sum(0) / m.sum()
        out.append(p)
    return torch.as_tensor(np.stack(out), dtype=dtype, device=masses.device)
