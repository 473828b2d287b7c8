"""Integrators batched over replicas: velocity Verlet, Nosé–Hoover chain NVT, Langevin, ramp rescaling.

Everything is in ASE units (Å, amu, eV, time unit ``ase.units.fs``-based) so a batch of one replica
steps exactly like ASE's own integrators. Arrays: positions/momenta/forces ``[R, N, 3]``, masses
``[N]``, per-replica target temperatures ``[R]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
    Suzuki–Yoshida 4th-order scheme ``tloop`` times.
    """

    temperature_K: torch.Tensor  # [R]
    n_atoms: int
    tdamp: float  # ASE time units
    tchain: int = 3
    tloop: int = 1
    eta: torch.Tensor = field(init=False)
    p_eta: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        kt = KB * self.temperature_K
        self.kt = kt
        q = (kt * self.tdamp**2)[:, None].repeat(1, self.tchain)
        q[:, 0] *= 3 * self.n_atoms
        self.Q = q
        self.eta = torch.zeros_like(q)
        self.p_eta = torch.zeros_like(q)

    def energy(self) -> torch.Tensor:
        """Thermostat energy per replica (for the conserved quantity)."""
        return (
            3 * self.n_atoms * self.kt * self.eta[:, 0]
            + self.kt * self.eta[:, 1:].sum(-1)
            + (0.5 * self.p_eta**2 / self.Q).sum(-1)
        )

    def half_step(self, momenta: torch.Tensor, masses: torch.Tensor, delta: float) -> torch.Tensor:
        """Integrate the chain over ``delta`` and return the rescaled momenta."""
        for _ in range(self.tloop):
            for w in _SY4:
                momenta = self._loop(momenta, masses, w * delta / self.tloop)
        return momenta

    def _p_eta_j(self, momenta: torch.Tensor, masses: torch.Tensor, j: int, d2: float, d4: float) -> None:
        last = j == self.tchain - 1
        if not last:
            self.p_eta[:, j] *= torch.exp(-d4 * self.p_eta[:, j + 1] / self.Q[:, j + 1])
        if j == 0:
            g = (momenta**2 / masses[None, :, None]).sum(dim=(1, 2)) - 3 * self.n_atoms * self.kt
        else:
            g = self.p_eta[:, j - 1] ** 2 / self.Q[:, j - 1] - self.kt
        self.p_eta[:, j] += d2 * g
        if not last:
            self.p_eta[:, j] *= torch.exp(-d4 * self.p_eta[:, j + 1] / self.Q[:, j + 1])

    def _loop(self, momenta: torch.Tensor, masses: torch.Tensor, delta: float) -> torch.Tensor:
        for j in reversed(range(self.tchain)):
            self._p_eta_j(momenta, masses, j, delta / 2, delta / 4)
        self.eta += delta * self.p_eta / self.Q
        momenta = momenta * torch.exp(-delta * self.p_eta[:, 0] / self.Q[:, 0])[:, None, None]
        for j in range(self.tchain):
            self._p_eta_j(momenta, masses, j, delta / 2, delta / 4)
        return momenta


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
