"""Batched force providers: the one protocol the MD engine talks to.

A force provider is a callable ``(numbers[N], positions[R, N, 3], cell[R, 3, 3]) -> (energy[R],
forces[R, N, 3])`` on torch tensors (eV, Å, eV/Å; float64 or float32, any device). ``R`` replicas of
the same composition are evaluated in one call, which is what makes small-cell MD fast on a GPU.
Providers are registered by name (:func:`get_provider`), so a trained MLFF plugs in next to the
built-in :class:`PairPotential` and the :class:`AseCalculatorProvider` adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

from crystalspace.errors import UserError

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

    from crystalspace.mlff.potential import Potential


class ForceProviderError(UserError, ValueError):
    """Unknown provider name or a provider that cannot serve the request."""


@runtime_checkable
class ForceProvider(Protocol):
    """Batched energies and forces for ``R`` replicas of one composition."""

    def __call__(
        self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


# --------------------------------------------------------------------------------------------- pair
ANIONS = frozenset({7, 8, 9, 16, 17, 34, 35, 52, 53})


class PairPotential(torch.nn.Module):
    """A cheap differentiable pair potential with a smooth cosine cut-off, batched over replicas.

    Cation–anion pairs bind with a Morse term ``D [(1 - e^{-a (r - r0)})² - 1]`` (``D = d_bond`` eV,
    ``r0`` = sum of ASE covalent radii × ``r0_scale``); all other pairs only repel,
    ``d_weak · e^{-2a (r - r0')}`` with ``r0'`` = covalent sum × ``r_nonbond_scale``. Every term is
    multiplied by ``s(r)``, which tapers from 1 at ``cutoff - taper`` to 0 at ``cutoff``.
    Periodic images are summed explicitly (every image within the cut-off, so cells narrower than
    twice the cut-off are exact, unlike the minimum-image convention). Forces come from autograd.
    It is a test and benchmark potential with sensible Li–P–S–Ge bonding, not a physical model.
    """

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
        self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            pos = positions.detach().requires_grad_(True)
            energy = self.energy(numbers, pos, cell)
            (grad,) = torch.autograd.grad(energy.sum(), pos)
        return energy.detach(), -grad.detach()


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


# ---------------------------------------------------------------------------------------------- ASE
class AseCalculatorProvider:
    """Adapter: any ASE calculator (e.g. ``chgnet.model.dynamics.CHGNetCalculator``) as a provider.

    Loops over the replicas (ASE calculators see one structure at a time), so it is for users and
    for reference results, not for speed.
    """

    def __init__(self, calculator: Calculator) -> None:
        self.calculator = calculator

    def __call__(
        self, numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from ase import Atoms

        z = numbers.detach().cpu().numpy()
        energies, forces = [], []
        for pos, box in zip(positions.detach().cpu().numpy(), cell.detach().cpu().numpy(), strict=True):
            atoms = Atoms(numbers=z, positions=pos, cell=box, pbc=True)
            atoms.calc = self.calculator
            energies.append(atoms.get_potential_energy())
            forces.append(atoms.get_forces())
        e = torch.as_tensor(np.asarray(energies), dtype=positions.dtype, device=positions.device)
        f = torch.as_tensor(np.asarray(forces), dtype=positions.dtype, device=positions.device)
        return e, f


def provider_calculator(provider: ForceProvider) -> Calculator:
    """The reverse adapter: a provider as an ASE calculator, so ASE's integrators can run it."""
    from ase.calculators.calculator import Calculator, all_changes

    class ProviderCalculator(Calculator):
        implemented_properties = ("energy", "forces", "free_energy")  # type: ignore[assignment]

        def calculate(
            self, atoms: Any = None, properties: Any = None, system_changes: Any = all_changes
        ) -> None:
            super().calculate(atoms, properties, system_changes)
            pos = torch.as_tensor(self.atoms.positions, dtype=torch.float64)[None]
            box = torch.as_tensor(np.asarray(self.atoms.cell[:]), dtype=torch.float64)[None]
            e, f = provider(torch.as_tensor(self.atoms.numbers), pos, box)
            self.results = {"energy": float(e[0]), "free_energy": float(e[0]), "forces": f[0].numpy()}

    return ProviderCalculator()


# ------------------------------------------------------------------------------------------ registry
_REGISTRY: dict[str, Callable[..., ForceProvider]] = {}


def register_provider(name: str, factory: Callable[..., ForceProvider]) -> None:
    """Make ``factory(device=..., **kwargs)`` available as ``get_provider(name, device, **kwargs)``."""
    _REGISTRY[name] = factory


def _pair(device: str = "cpu", **kwargs: Any) -> ForceProvider:
    return PairPotential(**kwargs).to(device)


def _chgnet(device: str = "cpu") -> ForceProvider:
    from chgnet.model.dynamics import CHGNetCalculator

    return AseCalculatorProvider(CHGNetCalculator(use_device=device))


register_provider("pair", _pair)
register_provider("chgnet", _chgnet)


MD_SKIN = 1.0
"""Verlet skin (Å) of saved-model providers: neighbour lists are reused until an atom moved skin/2."""


def get_provider(name: str, device: str = "cpu", **kwargs: Any) -> ForceProvider:
    """A force provider by name (``pair``, ``chgnet``, or anything registered), or a trained model.

    Any other name is looked up as a saved MLFF (a registry directory, or an entry name under
    ``$CRYSTALSPACE_REGISTRY``) and served by :meth:`crystalspace.mlff.potential.Potential.batched`
    with a Verlet list (``skin`` keyword, default :data:`MD_SKIN`; 0 searches every step);
    ``device`` picks where it runs.
    """
    if name in _REGISTRY:
        return _REGISTRY[name](device=device, **kwargs)
    from crystalspace.mlff.potential import load_potential
    from crystalspace.registry import RegistryError

    try:
        potential = load_potential(name, device=device)
    except RegistryError as exc:
        raise ForceProviderError(_unknown(name, exc)) from None
    potential.skin = float(kwargs.get("skin", MD_SKIN))
    return potential_provider(potential)


def check_provider(name: str) -> None:
    """Raise :class:`ForceProviderError` unless ``name`` is a registered provider or a saved model.

    Cheap (reads the registry entry's JSON files, not its weights): commands call it before they
    start Ray or write anything.
    """
    if name in _REGISTRY:
        return
    from crystalspace.registry import RegistryError, load_entry

    if not name.strip():
        raise ForceProviderError(_unknown(name, None))
    try:
        load_entry(name)
    except RegistryError as exc:
        raise ForceProviderError(_unknown(name, exc)) from None


def _unknown(name: str, exc: Exception | None) -> str:
    """The one-line message for a provider name that is neither registered nor a saved model."""
    import os
    from pathlib import Path

    root = os.environ.get("CRYSTALSPACE_REGISTRY")
    saved = (
        sorted(p.name for p in Path(root).iterdir() if (p / "config.json").is_file())
        if root and Path(root).is_dir()
        else []
    )
    shown = ", ".join(saved[:8]) + (f", … ({len(saved)} in all)" if len(saved) > 8 else "")
    models = f"a saved model name under {root} ({shown or 'none saved'})" if root else (
        "a saved model name (set CRYSTALSPACE_REGISTRY)")  # fmt: skip
    why = f" ({exc})" if exc else ""
    return f"unknown force provider {name!r}{why}; valid: {', '.join(sorted(_REGISTRY))}, {models} or a model path"


def potential_provider(potential: Potential) -> ForceProvider:
    """The MD force provider of a :class:`~crystalspace.mlff.potential.Potential` (its ``batched``)."""

    def provider(
        numbers: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        energy, forces = potential.batched(numbers, positions, cell)[:2]
        return energy, forces

    return provider


def provider_info(name: str) -> dict[str, Any]:
    """What the study's model table shows for a provider: symmetry, parameters, training epochs."""
    if name == "chgnet":
        return {"symmetry": "invariant", "parameters": 412525, "epochs": "pretrained (v0.3.0)"}
    if name in _REGISTRY:
        return {"symmetry": "invariant", "parameters": 0, "epochs": "none (analytic)"}
    from crystalspace.mlff.potential import load_potential
    from crystalspace.registry import load_entry

    entry = load_entry(name)
    model = load_potential(name).model
    return {
        "model": entry.name,
        "arch": model.arch,
        "symmetry": model.symmetry,
        "conservative": model.conservative,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": entry.metrics.get("epochs_run"),
        "val_force_mae": entry.metrics.get("val_force_mae"),
    }
