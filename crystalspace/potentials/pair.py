"""The analytic pair potential (registered as ``pair``): a cheap, differentiable test and benchmark
provider with stress, batched over replicas (from the former ``md/forces.py``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from crystalspace.potentials.base import ForceProvider, register_provider

ANIONS = frozenset({7, 8, 9, 16, 17, 34, 35, 52, 53})


class PairPotential(torch.nn.Module):
    """A cheap differentiable pair potential with a smooth cosine cut-off, batched over replicas.

    Cation–anion pairs bind with a Morse term ``D [(1 - e^{-a (r - r0)})² - 1]`` (``D = d_bond`` eV,
    ``r0`` = sum of ASE covalent radii × ``r0_scale``); all other pairs only repel,
    ``d_weak · e^{-2a (r - r0')}`` with ``r0'`` = covalent sum × ``r_nonbond_scale``. Every term is
    multiplied by ``s(r)``, which tapers from 1 at ``cutoff - taper`` to 0 at ``cutoff``.
    Periodic images are summed explicitly (every image within the cut-off, so cells narrower than
    twice the cut-off are exact, unlike the minimum-image convention). Forces and stress come from
    autograd. It is a test and benchmark potential with sensible Li–P–S–Ge bonding, not a physical model.
    """

    name = "pair"
    has_stress = True

    def __init__(
        self,
        cutoff: float = 5.0,
        taper: float = 1.0,
        alpha: float = 1.6,
        d_bond: float = 0.6,
        d_weak: float = 0.03,
        r0_scale: float = 1.0,
        r_nonbond_scale: float = 1.3,
    ) -> None:
        super().__init__()
        self.cutoff, self.taper, self.alpha = cutoff, taper, alpha
        self.d_bond, self.d_weak, self.r0_scale, self.r_nonbond_scale = (
            d_bond,
            d_weak,
            r0_scale,
            r_nonbond_scale,
        )

    def pair_tables(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-pair ``D`` (eV), ``r0`` (Å) and bonded-mask matrices for one composition."""
        from ase.data import covalent_radii

        z = np.asarray(numbers, dtype=int)
        rcov = covalent_radii[z]
        anion = np.isin(z, list(ANIONS))
        bond = anion[:, None] ^ anion[None, :]
        r0 = np.where(bond, self.r0_scale, self.r_nonbond_scale) * (rcov[:, None] + rcov[None, :])
        depth = np.where(bond, self.d_bond, self.d_weak)
        return depth, r0, bond

    def _tables(
        self, numbers: torch.Tensor, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pair tables on the device, cached for the last ``numbers`` tensor object (no host copy per MD
        step; the cache holds the tensor, so its identity cannot be reused by another one)."""
        key = (dtype, device)
        if getattr(self, "_numbers", None) is not numbers or getattr(self, "_key", None) != key:
            depth, r0, bond = self.pair_tables(numbers.detach().cpu().numpy())
            self._cached = (
                torch.as_tensor(depth, dtype=dtype, device=device),
                torch.as_tensor(r0, dtype=dtype, device=device),
                torch.as_tensor(bond, device=device),
            )
            self._key, self._numbers = key, numbers
        return self._cached

    def energy(self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Energies ``[R]`` of ``positions [R, N, 3]`` in cells ``[R, 3, 3]``."""
        depth, r0, bond = self._tables(numbers, positions.dtype, positions.device)
        dtype, device = positions.dtype, positions.device
        shifts = image_shifts(cell, self.cutoff).to(dtype)  # [S, 3]
        offsets = torch.einsum("sk,rkj->rsj", shifts, cell.to(dtype))  # [R, S, 3]
        diff = positions[:, None, :, None, :] - positions[:, None, None, :, :]  # [R, 1, N, N, 3]
        vec = diff + offsets[:, :, None, None, :]  # [R, S, N, N, 3]
        r2 = (vec * vec).sum(-1)
        n = positions.shape[1]
        zero = (shifts.abs().sum(-1) == 0)[:, None, None] & torch.eye(n, dtype=torch.bool, device=device)
        inside = (r2 < self.cutoff**2) & ~zero[None]
        r = torch.sqrt(torch.where(inside, r2, torch.ones_like(r2)))
        x = torch.exp(-self.alpha * (r - r0))
        morse = torch.where(bond, depth * ((1 - x) ** 2 - 1), depth * x * x)
        t = ((r - (self.cutoff - self.taper)) / self.taper).clamp(0, 1)
        switch = 0.5 * (1 + torch.cos(math.pi * t))
        pair = torch.where(inside, morse * switch, torch.zeros_like(r))
        return 0.5 * pair.sum(dim=(1, 2, 3))

    def forward(
        self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor, stress: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """Energy ``[R]`` (eV), forces ``[R, N, 3]`` (eV/Å) and, with ``stress``, ``[R, 3, 3]`` (eV/Å³)."""
        with torch.enable_grad():
            pos = positions.detach().requires_grad_(True)
            if not stress:
                energy = self.energy(numbers, pos, cell)
                (grad,) = torch.autograd.grad(energy.sum(), pos)
                return energy.detach(), -grad.detach()
            box = cell.detach().to(pos.dtype)  # strain ε acts on positions and cell: r → r (1 + ε)
            strain = torch.zeros_like(box, requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            energy = self.energy(numbers, pos + pos @ sym, box + box @ sym)
            grad, dstrain = torch.autograd.grad(energy.sum(), [pos, strain])
        volume = torch.linalg.det(box).abs().reshape(-1, 1, 1)
        return energy.detach(), -grad.detach(), dstrain.detach() / volume


def image_shifts(cell: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Integer lattice shifts ``[S, 3]`` that cover every image within ``cutoff`` for all cells."""
    c = cell.detach().to(torch.float64).reshape(-1, 3, 3)
    volume = torch.linalg.det(c).abs()
    cross = torch.stack(
        [
            torch.linalg.cross(c[:, 1], c[:, 2]),
            torch.linalg.cross(c[:, 2], c[:, 0]),
            torch.linalg.cross(c[:, 0], c[:, 1]),
        ],
        dim=1,
    )
    widths = volume[:, None] / cross.norm(dim=-1)  # perpendicular widths [R, 3]
    reach = torch.ceil(cutoff / widths.min(dim=0).values).to(torch.int64).tolist()
    axes = [torch.arange(-k, k + 1, device=cell.device) for k in reach]
    return torch.cartesian_prod(*axes).to(cell.device)


def _pair(device: str = "cpu", **kwargs: Any) -> ForceProvider:
    return PairPotential(**kwargs).to(device)


register_provider("pair", _pair, {"symmetry": "E(3)-invariant", "parameters": 0, "epochs": "none (analytic)"})
