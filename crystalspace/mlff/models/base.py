"""What every force-field architecture shares: the graph it sees, the energy scale, the cutoff envelope.

An architecture subclasses :class:`ForceField` and implements :meth:`ForceField.raw` mapping a
:class:`GraphInput` (species, differentiable edge vectors, batch index) to per-structure raw energies
(B,) and, for direct-force models only, per-atom raw forces (N, 3). The base class turns raw
outputs into eV and eV/Å with a fitted per-element reference energy and one scale
(:meth:`ForceField.fit_scale`), so every model trains on numbers of order one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

MAX_Z = 119


@dataclass
class GraphInput:
    """A batch of periodic graphs as a model sees it.

    ``vec`` (E, 3) are edge vectors from centre ``edge_index[1]`` to neighbour ``edge_index[0]`` (Å),
    already shift- and cell-aware and differentiable w.r.t. positions and strain.
    """

    z: Tensor
    pos: Tensor
    vec: Tensor
    edge_index: Tensor
    batch: Tensor
    num_graphs: int
    shift: Tensor | None = None

    @property
    def dist(self) -> Tensor:
        """Edge lengths (E,), Å."""
        return self.vec.norm(dim=-1)


def cosine_cutoff(dist: Tensor, cutoff: float) -> Tensor:
    """Smooth envelope 0.5·(cos(πd/rc)+1), zero with zero slope at the cutoff."""
    return 0.5 * (torch.cos(dist * math.pi / cutoff) + 1.0) * (dist < cutoff).to(dist.dtype)


class GaussianBasis(nn.Module):
    """Gaussian radial basis on [0, cutoff] (Å)."""

    centers: Tensor

    def __init__(self, cutoff: float, num: int = 32) -> None:
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, num))
        self.gamma = 0.5 / (cutoff / (num - 1)) ** 2

    def forward(self, dist: Tensor) -> Tensor:
        return torch.exp(-self.gamma * (dist.unsqueeze(-1) - self.centers.to(dist.dtype)) ** 2)


class BesselBasis(nn.Module):
    """sin(nπd/rc)/d radial basis (DimeNet/NequIP)."""

    freq: Tensor

    def __init__(self, cutoff: float, num: int = 8) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("freq", torch.arange(1, num + 1) * math.pi / cutoff)

    def forward(self, dist: Tensor) -> Tensor:
        d = dist.unsqueeze(-1)
        return math.sqrt(2.0 / self.cutoff) * torch.sin(self.freq.to(d.dtype) * d) / d.clamp_min(1e-9)


class ForceField(nn.Module):
    """Base class of the force-field zoo.

    Attributes:
        arch: registry name of the architecture.
        conservative: True when forces are −∂E/∂r (autograd); False for direct-force heads.
        rotation_invariant: True when the energy is rotation invariant and the forces rotate with the
            structure; False for a model that sees directions in the laboratory frame.
        symmetry: how the hidden features transform, as the study tabulates it ("E(3)-invariant" for
            scalar distance/angle models, "E(3)-equivariant", "SO(3)-equivariant", ... for vector or
            tensor features).
        cutoff: neighbour cutoff the model was built for (Å).
        study_hparams: hyper-parameters (beyond cutoff 6 Å) that size the model as the MLFF study's
            Table 1 does; empty for models outside the study.
        study_params: the study's parameter count on LGPS (Table 1); None outside the study.
    """

    arch: ClassVar[str] = ""
    conservative: ClassVar[bool] = True
    rotation_invariant: ClassVar[bool] = True
    symmetry: ClassVar[str] = "E(3)-invariant"
    study_hparams: ClassVar[dict[str, Any]] = {}
    study_params: ClassVar[float | None] = None
    atom_ref: Tensor
    scale: Tensor

    def __init__(self, cutoff: float, **hparams: Any) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.hparams: dict[str, Any] = {"cutoff": float(cutoff), **hparams}
        self.register_buffer("atom_ref", torch.zeros(MAX_Z))
        self.register_buffer("scale", torch.ones(()))

    @classmethod
    def check_hparams(cls, hparams: dict[str, Any]) -> None:
        """Raise ``ValueError`` (one line) when these hyper-parameters cannot build the model.

        Called at config validation, before anything is trained; a model with constraints between its
        hyper-parameters (lmax against the width, heads dividing the width) overrides it.
        """

    def raw(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        """Per-structure raw energies (B,) and, for direct-force models, raw forces (N, 3)."""
        raise NotImplementedError

    def edge_work(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """Work (memory) units of each edge (E,), used to split big batches: 1 per edge by default."""
        return torch.ones(edge_index.shape[1], device=edge_index.device)

    def forward(self, g: GraphInput) -> tuple[Tensor, Tensor | None]:
        """Energies (B,) in eV and direct forces (N, 3) in eV/Å (None for conservative models)."""
        energy, forces = self.raw(g)
        ref = torch.zeros(g.num_graphs, dtype=energy.dtype, device=energy.device)
        ref = ref.index_add(0, g.batch, self.atom_ref.to(energy.dtype)[g.z])
        energy = self.scale.to(energy.dtype) * energy + ref
        if forces is not None:
            forces = self.scale.to(forces.dtype) * forces
        return energy, forces

    @torch.no_grad()
    def fit_scale(self, numbers: list[np.ndarray], energies: np.ndarray, forces: np.ndarray) -> None:
        """Per-element reference energies (least squares, minimum norm) and the force RMS as scale.

        Args:
            numbers: atomic numbers of each training structure.
            energies: total energies (eV), one per structure.
            forces: all force components of the training set (eV/Å).
        """
        counts = np.zeros((len(numbers), MAX_Z))
        for k, z in enumerate(numbers):
            np.add.at(counts[k], np.asarray(z, dtype=int), 1.0)
        used = counts.any(axis=0)
        coef = np.linalg.lstsq(counts[:, used], np.asarray(energies, dtype=np.float64), rcond=None)[0]
        ref = np.zeros(MAX_Z)
        ref[used] = coef
        self.atom_ref.copy_(torch.as_tensor(ref, dtype=self.atom_ref.dtype))
        rms = float(np.sqrt(np.mean(np.square(forces)))) if np.size(forces) else 1.0
        self.scale.fill_(rms if rms > 0 else 1.0)


def scatter_sum(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Sum rows of ``src`` into ``size`` slots by ``index`` (pure torch, differentiable twice)."""
    out = torch.zeros((size, *src.shape[1:]), dtype=src.dtype, device=src.device)
    return out.index_add(0, index, src)
